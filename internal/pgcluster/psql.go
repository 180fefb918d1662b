package pgcluster

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// serverPrograms run on the data folder, not over a connection: Command
// runs them as the server user when the caller is root.
var serverPrograms = map[string]bool{
	"initdb": true, "pg_ctl": true, "postgres": true, "postmaster": true,
	"pg_controldata": true, "pg_resetwal": true, "pg_checksums": true,
	"pg_rewind": true, "pg_upgrade": true, "pg_waldump": true,
}

// connFlagPrograms accept the standard -h, -p and -U connection flags.
var connFlagPrograms = map[string]bool{
	"psql": true, "pg_dump": true, "pg_dumpall": true, "pg_restore": true,
	"pg_isready": true, "createdb": true, "dropdb": true, "vacuumdb": true,
	"reindexdb": true, "clusterdb": true, "pgbench": true, "pg_amcheck": true,
}

// Command prepares the PostgreSQL program name from the cluster's bin folder.
//
// Client programs (psql, pg_dump, pg_restore, ...) get the connection flags
// "-h <socket dir> -p <port> -U postgres" before args, and PGHOST, PGPORT and
// PGUSER in their environment for programs with other flags. They run as the
// calling user (trust authentication makes that enough), so files they
// write belong to the caller. Server-side programs (pg_ctl, pg_controldata,
// ...) run as the server user when the caller is root, with the cluster
// folder as working folder.
//
// Every PG* variable of the caller's environment is dropped, and LC_ALL=C
// makes messages English. The caller sets Stdin, Stdout and Stderr and runs
// the command; ctx kills it.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if serverPrograms[name] {
		return c.serverCommand(ctx, name, args...)
	}
	var full []string
	if connFlagPrograms[name] {
		full = append(full, "-h", c.socketDir, "-p", strconv.Itoa(c.port), "-U", Superuser)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), full...)
	cmd.Env = append(cleanEnv(), "PGHOST="+c.socketDir, "PGPORT="+strconv.Itoa(c.port), "PGUSER="+Superuser)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs the SQL text sql in database db with psql, stopping at the first
// error. Statements run in autocommit mode unless sql says otherwise, so
// VACUUM and CREATE DATABASE work.
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	return c.ExecScript(ctx, db, strings.NewReader(sql))
}

// ExecScript runs a psql script read from script in database db (as
// "psql -f -"), stopping at the first error. The script may contain
// COPY ... FROM STDIN data inline, as plain-format dumps do. It reads script
// to the end or until psql fails; it does not close it.
func (c *Cluster) ExecScript(ctx context.Context, db string, script io.Reader, extraArgs ...string) error {
	args := append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db}, extraArgs...)
	args = append(args, "-f", "-")
	cmd := c.Command(ctx, "psql", args...)
	cmd.Stdin = script
	var stderr tailWriter
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgcluster: psql on database %s: %w: %s\n%s", db, contextErr(ctx, err), stderr.Headline(), stderr.String())
	}
	return nil
}

// Query runs one SQL query in database db and returns its rows, each field
// as psql prints it. SQL NULL reads as the empty string (use COALESCE or
// IS NULL in the query when that matters). It is for small results; use
// [Cluster.QueryFunc] to stream large ones.
func (c *Cluster) Query(ctx context.Context, db, sql string) ([][]string, error) {
	var rows [][]string
	err := c.QueryFunc(ctx, db, sql, func(row []string) error {
		rows = append(rows, append([]string(nil), row...))
		return nil
	})
	return rows, err
}

// QueryFunc runs one SQL query in database db and calls fn with each row as
// it arrives. The row slice is reused: fn must copy what it keeps. An error
// from fn stops the query and is returned.
func (c *Cluster) QueryFunc(ctx context.Context, db, sql string, fn func(row []string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := c.Command(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--csv", "--tuples-only", "-d", db, "-c", sql)
	var stderr tailWriter
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pgcluster: psql: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgcluster: start psql: %w", err)
	}
	r := csv.NewReader(stdout)
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	var readErr error
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("pgcluster: read query result: %w", err)
			break
		}
		if err := fn(row); err != nil {
			readErr = err
			break
		}
	}
	if readErr != nil {
		cancel()
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		return readErr
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("pgcluster: query on database %s: %w: %s\n%s", db, contextErr(ctx, err), stderr.Headline(), stderr.String())
	}
	return nil
}

// CreateDatabase creates database name (UTF8, C locale, from template0).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	sql := "CREATE DATABASE " + QuoteIdent(name) + " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	if err := c.Exec(ctx, "postgres", sql); err != nil {
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name if it exists, disconnecting its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	return nil
}

// QuoteIdent quotes s as an SQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// checkName rejects database names PostgreSQL cannot hold.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("pgcluster: empty database name")
	case len(name) > 63:
		return fmt.Errorf("pgcluster: database name %q is longer than 63 bytes", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("pgcluster: database name %q contains NUL", name)
	}
	return nil
}

// maxStderr is how much of a command's error output an error carries.
const maxStderr = 8 << 10

// tailWriter keeps the last maxStderr bytes written to it.
type tailWriter struct {
	buf []byte
}

// Write implements io.Writer; it never fails.
func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= maxStderr {
		w.buf = append(w.buf[:0], p[len(p)-maxStderr:]...)
		return n, nil
	}
	if over := len(w.buf) + len(p) - maxStderr; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// Headline returns the line of the kept output that best says what went
// wrong, for a one-line message: the first line holding "ERROR:" or
// "FATAL:", else the last non-empty line, else "no error output".
func (w *tailWriter) Headline() string {
	lines := strings.Split(w.String(), "\n")
	for _, l := range lines {
		if strings.Contains(l, "ERROR:") || strings.Contains(l, "FATAL:") {
			return strings.TrimSpace(l)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return "no error output"
}

// String returns the kept bytes without trailing newlines.
func (w *tailWriter) String() string { return strings.TrimRight(string(w.buf), "\n") }
