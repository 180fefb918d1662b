package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// SetupError reports that [Start] cannot run with these options on this
// machine: a bin folder without PostgreSQL, no usable server user, a
// temporary folder that is missing or that the server user cannot enter.
// These are the operator's to fix; nothing was started.
type SetupError struct {
	// Option is the field of [Options] at fault ("BinDir", "ServerUser",
	// "Dir"), or "" when no PostgreSQL installation was found at all.
	Option string
	Err    error
}

func (e *SetupError) Error() string {
	if msg := e.Err.Error(); strings.HasPrefix(msg, "pgcluster: ") {
		return msg // FindBinDir's errors say so already
	}
	return "pgcluster: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *SetupError) Unwrap() error { return e.Err }

// fallbackServerUser runs the server on hosts without a "postgres" user.
const fallbackServerUser = "nobody"

// DefaultServerUser is the OS user that runs the server when the caller is
// root and [Options.ServerUser] is empty: "postgres" where that user exists
// (the PostgreSQL packages create it), else "nobody" (a Discourse Docker
// host has PostgreSQL's programs but its postgres user lives in the
// container). Any process running as that user can reach the scratch
// cluster's data while it runs; name a dedicated user where that matters.
func DefaultServerUser() string {
	return defaultServerUser(func(name string) bool {
		_, err := user.Lookup(name)
		return err == nil
	})
}

// defaultServerUser picks the default server user given a test of which
// OS users exist.
func defaultServerUser(exists func(string) bool) string {
	if exists(Superuser) {
		return Superuser
	}
	return fallbackServerUser
}

// Setup is what [Check] found.
type Setup struct {
	BinDir string
	// Version is the server's "postgres --version" line.
	Version string
	// ServerUser runs the server programs; "" when they run as the caller
	// (who is not root).
	ServerUser string
}

// Check checks, without starting anything, what [Start] needs from the
// machine and opts: a usable bin folder and its version; when the caller is
// root, an unprivileged server user; and a temporary folder (opts.Dir, else
// the system's) that exists, that the caller can create folders in, that
// the server user can enter, and short enough for the socket path. Errors
// about the machine or the options are [*SetupError]s.
func Check(ctx context.Context, opts Options) (*Setup, error) {
	c, _, err := newCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := c.checkParent(opts.Dir); err != nil {
		return nil, err
	}
	return &Setup{BinDir: c.binDir, Version: c.version, ServerUser: c.user}, nil
}

// checkParent checks the folder the cluster's temporary folder goes in.
func (c *Cluster) checkParent(dir string) error {
	if dir == "" {
		dir = os.TempDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s: %w", dir, err)}
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s does not exist", abs)}
	case err != nil:
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s: %w", abs, err)}
	case !fi.IsDir():
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s is not a folder", abs)}
	}
	// The longest socket path Start can make there: MkdirTemp's random part
	// is at most 10 digits.
	sock := filepath.Join(abs, "pgcluster-"+strings.Repeat("0", 10), "sock", ".s.PGSQL."+strconv.Itoa(c.port))
	if len(sock) > maxSocketPath {
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s: its socket path would be %d bytes, over the limit of %d; use a shorter path", abs, len(sock), maxSocketPath)}
	}
	probe, err := os.MkdirTemp(abs, "pgcluster-check-")
	if err != nil {
		return &SetupError{Option: "Dir", Err: fmt.Errorf("temporary folder %s: cannot create a folder in it: %w", abs, err)}
	}
	if err := os.Remove(probe); err != nil {
		return fmt.Errorf("pgcluster: remove %s: %w", probe, err)
	}
	if c.cred != nil {
		return checkSearchable(abs, c.user, c.cred)
	}
	return nil
}

// ClientEnv returns the environment for a program of the caller's that
// uses the cluster (a migration, a check query): the process environment
// without its PG* variables, then PGHOST, PGPORT, PGUSER and PGDATABASE
// (db), and PATH starting with the bin folder so that psql and pg_dump are
// the server's version.
func (c *Cluster) ClientEnv(db string) []string {
	var env []string
	path := c.binDir
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			if p != "" {
				path += string(os.PathListSeparator) + p
			}
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+path, "PGHOST="+c.socketDir, "PGPORT="+strconv.Itoa(c.port),
		"PGUSER="+Superuser, "PGDATABASE="+db)
}

// ConnectCommand returns a shell command line that opens psql (the
// server's own) on database db, for an operator.
func (c *Cluster) ConnectCommand(db string) string {
	return shellQuote(filepath.Join(c.binDir, "psql")) + " -h " + shellQuote(c.socketDir) + " -p " + strconv.Itoa(c.port) +
		" -U " + Superuser + " " + shellQuote(db)
}

// ShortVersion shortens a "postgres --version" line, "postgres
// (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", to "PostgreSQL 15.18".
func ShortVersion(v string) string {
	if _, rest, ok := strings.Cut(v, "(PostgreSQL) "); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			return "PostgreSQL " + f[0]
		}
	}
	return v
}

// StopCommand returns a shell command line that stops the server and
// removes the cluster's folder, for an operator who keeps a cluster
// running after this process ends (as root, pg_ctl runs as the server
// user through runuser, from "/").
func (c *Cluster) StopCommand() string {
	pgctl := shellQuote(filepath.Join(c.binDir, "pg_ctl")) + " stop --pgdata=" + shellQuote(c.dataDir) + " --mode=fast --wait"
	if c.user != "" {
		// From "/", which the server user can enter wherever the
		// operator stands.
		pgctl = "(cd / && runuser -u " + shellQuote(c.user) + " -- " + pgctl + ")"
	}
	return pgctl + " && rm -rf " + shellQuote(c.root)
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
