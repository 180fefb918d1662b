package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// LoadBackup unpacks a restored backup with the real tools, the way
// Discourse restores (tar --extract, with --gzip when compressed; a
// dump-only backup is pg_dump's own gzip), and loads its dump into db:
// psql --single-transaction for a plain dump, pg_restore for a directory
// format one. It returns, for a directory-format dump, the table of each data
// file.
func (c *Cluster) LoadBackup(ctx context.Context, db, path, work string) (map[string]string, error) {
	head := make([]byte, 512)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	n, _ := io.ReadFull(f, head) // a short file has a short head; tar and the loaders judge it
	_ = f.Close()                // read-only: nothing to lose
	head = head[:n]
	gz := len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b
	x := filepath.Join(work, "x")
	if err := os.MkdirAll(x, 0o700); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, firstLine(stderr.String()))
		}
		return nil
	}
	isTar := exec.CommandContext(ctx, "tar", "-tf", path).Run() == nil
	switch {
	case isTar:
		// As Discourse: tar --extract (with --gzip when compressed).
		args := []string{"--extract", "--file", path, "--directory", x}
		if gz {
			args = append(args, "--gzip")
		}
		if err := run("tar", args...); err != nil {
			return nil, err
		}
	case gz:
		// A dump-only backup: the file is pg_dump's gzip.
		if err := os.Rename(path, filepath.Join(x, "dump.sql.gz")); err != nil {
			return nil, err
		}
	default:
		if err := os.Rename(path, filepath.Join(x, "dump.sql")); err != nil {
			return nil, err
		}
	}
	switch {
	case exists(filepath.Join(x, "dump.sql.gz")):
		return nil, c.loadSQL(ctx, db, filepath.Join(x, "dump.sql.gz"), true)
	case exists(filepath.Join(x, "dump.sql")):
		return nil, c.loadSQL(ctx, db, filepath.Join(x, "dump.sql"), false)
	case exists(filepath.Join(x, "db", "toc.dat")):
		dir := filepath.Join(x, "db")
		if err := c.run(ctx, "pg_restore", "--no-owner", "--no-privileges", "-d", db, dir); err != nil {
			return nil, err
		}
		return c.tocTables(ctx, dir)
	}
	return nil, errors.New("the restored backup holds no dump.sql.gz, dump.sql or db/toc.dat")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// loadSQL pipes a plain-format dump into psql in one transaction, as
// Discourse's restore does; a gzip dump is read through gzip -dc, and
// gzip's failure (a damaged dump ends early) fails the load when psql's
// did not.
func (c *Cluster) loadSQL(ctx context.Context, db, path string, gz bool) error {
	if !gz {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }() // read-only: nothing to lose
		return c.ExecScript(ctx, db, bufio.NewReaderSize(f, 1<<20), "--single-transaction")
	}
	cmd := exec.CommandContext(ctx, "gzip", "-dc", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	err = c.ExecScript(ctx, db, bufio.NewReaderSize(out, 1<<20), "--single-transaction")
	// psql read to the end, or stopped early: then closing the pipe ends a
	// gzip still writing to it (which would otherwise block on it).
	_ = out.Close() // a read end: nothing to lose
	if werr := cmd.Wait(); werr != nil && err == nil {
		return fmt.Errorf("gzip -dc %s: %w", path, werr)
	}
	return err
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := c.Command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, firstLine(stderr.String()))
	}
	return nil
}

// tocTables maps data files (NNNN.dat) to their tables with pg_restore -l.
var tocLine = regexp.MustCompile(`^(\d+); \d+ \d+ TABLE DATA (\S+) (\S+) `)

func (c *Cluster) tocTables(ctx context.Context, dir string) (map[string]string, error) {
	cmd := c.Command(ctx, "pg_restore", "-l", dir)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_restore -l: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if g := tocLine.FindStringSubmatch(line); g != nil {
			m[g[1]+".dat"] = g[2] + "." + g[3]
		}
	}
	return m, nil
}

// quoteQualified quotes schema.table for SQL.
func quoteQualified(t string) string {
	parts := strings.SplitN(t, ".", 2)
	for i, p := range parts {
		parts[i] = QuoteIdent(strings.Trim(p, `"`))
	}
	return strings.Join(parts, ".")
}

// CountRows counts the rows of a table (schema.table) in db.
func (c *Cluster) CountRows(ctx context.Context, db, table string) (uint64, error) {
	rows, err := c.Query(ctx, db, "SELECT count(*) FROM "+quoteQualified(table))
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, fmt.Errorf("counting the rows of %s: %d rows back", table, len(rows))
	}
	return strconv.ParseUint(rows[0][0], 10, 64)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
