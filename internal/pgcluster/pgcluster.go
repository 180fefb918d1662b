// Package pgcluster starts and stops a throwaway PostgreSQL cluster in a
// temporary folder, for the fixture builder and for restore drills.
//
// # Lifetime
//
// [Start] runs initdb into a fresh temporary folder, starts the server
// listening only on a Unix socket inside that folder, and waits until it
// accepts connections. [Cluster.Stop] stops the server (fast shutdown) and
// removes the folder, whatever state Start left behind. Callers must call
// Stop, typically with defer or t.Cleanup, even when later steps fail.
//
// # Users
//
// PostgreSQL refuses to run as root. When the calling process is root, the
// server programs (initdb, pg_ctl, postgres) run as the unprivileged OS user
// [Options.ServerUser] ([DefaultServerUser]: "postgres" where it exists, else
// "nobody"), and the temporary folder is owned by that user. [Check] says
// beforehand whether the options fit the machine. Client programs (psql, pg_dump, pg_restore) connect over
// the socket as the database superuser "postgres" with trust authentication,
// so they run as the calling user: the files they read and write belong to the
// caller and may live in folders the server user cannot enter.
//
// # Safety
//
// The cluster trusts every local connection and runs with fsync=off: it is
// for scratch data only and must never hold anything that matters.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Superuser is the database superuser that initdb creates and that every
// client command connects as.
const Superuser = "postgres"

// DefaultPort is the port number used for the socket file name when
// [Options.Port] is zero. The server listens on no TCP port, so the number
// only names the socket file (.s.PGSQL.<port>) in the cluster's private
// socket folder and cannot clash with other servers.
const DefaultPort = 5432

// DefaultStartTimeout bounds how long Start waits for the server to accept
// connections when [Options.StartTimeout] is zero.
const DefaultStartTimeout = 60 * time.Second

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// maxLogTail is how much of the end of the server log an error carries.
const maxLogTail = 4 << 10

// stopTimeout bounds pg_ctl stop; after it the server is stopped immediately.
const stopTimeout = 60 * time.Second

// ErrNoPostgres reports that no PostgreSQL installation was found. Errors from
// [FindBinDir] and [Start] wrap it when that is the cause.
var ErrNoPostgres = errors.New("no usable PostgreSQL installation")

// Options configures [Start]. The zero value is usable.
type Options struct {
	// BinDir is a hint for [FindBinDir], for example a user's --pg-bin flag.
	// Empty means search the usual places.
	BinDir string

	// Dir is the parent of the temporary cluster folder; empty means the
	// system temporary folder. When running as root, ServerUser must be able
	// to enter every folder on the path, and the socket path must stay under
	// 107 bytes, so keep it short.
	Dir string

	// Port names the socket file; zero means DefaultPort.
	Port int

	// StartTimeout bounds the wait for the server to accept connections;
	// zero means DefaultStartTimeout.
	StartTimeout time.Duration

	// ServerUser is the OS user that runs the server when the calling
	// process is root; empty means [DefaultServerUser]. It is ignored
	// otherwise.
	ServerUser string

	// Settings are extra postgresql.conf settings, written after the
	// defaults (so they override them). Values are quoted as strings.
	Settings map[string]string
}

// Cluster is a running throwaway PostgreSQL server. Its methods are safe for
// concurrent use. Stop it with [Cluster.Stop].
type Cluster struct {
	binDir    string
	root      string // the temporary folder; removed by Stop
	dataDir   string
	socketDir string
	logFile   string
	port      int
	cred      *syscall.Credential // non-nil when server programs run as another user
	user      string              // the name of cred's user, or ""
	version   string

	mu            sync.Mutex
	stopped       bool
	mayBeStarting bool // pg_ctl start was interrupted
}

// BinDir returns the folder holding the PostgreSQL programs in use.
func (c *Cluster) BinDir() string { return c.binDir }

// Dir returns the cluster's temporary folder (data, socket and log live below
// it). It is removed by Stop.
func (c *Cluster) Dir() string { return c.root }

// SocketDir returns the folder holding the server's Unix socket; clients pass
// it as the host (-h).
func (c *Cluster) SocketDir() string { return c.socketDir }

// Port returns the port number that names the socket file.
func (c *Cluster) Port() int { return c.port }

// ServerUser returns the OS user that runs the server programs when the
// caller is root, or "" when they run as the caller.
func (c *Cluster) ServerUser() string { return c.user }

// Version returns the server version as printed by "postgres --version", for
// example "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
func (c *Cluster) Version() string { return c.version }

// LogTail returns up to the last 4 KiB of the server log, for diagnostics.
func (c *Cluster) LogTail() string { return readTail(c.logFile, maxLogTail) }

// Start creates and starts a throwaway cluster: initdb (trust
// authentication, superuser "postgres", UTF8, C locale, no sync), then the
// server listening only on a Unix socket in the cluster folder, with fsync
// off. It returns when the server accepts connections. On failure nothing is
// left running and the folder is removed; the error includes the end of the
// server log when the server was started.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, timeout, err := newCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(opts.Dir, "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: create cluster folder: %w", err)
	}
	c.root = root
	c.dataDir = filepath.Join(root, "data")
	c.socketDir = filepath.Join(root, "sock")
	c.logFile = filepath.Join(root, "server.log")
	ok := false
	defer func() {
		if !ok {
			_ = c.Stop() // the error that stopped Start is the one to report
		}
	}()
	if err := c.prepareFolders(); err != nil {
		return nil, err
	}
	initdb := c.serverCommand(ctx, "initdb",
		"--pgdata="+c.dataDir,
		"--username="+Superuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgcluster: initdb: %w\n%s", contextErr(ctx, err), tail(out, maxLogTail))
	}
	if err := c.writeConfig(opts.Settings); err != nil {
		return nil, err
	}
	if err := c.startServer(ctx, timeout); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// newCluster checks the options and returns the Cluster to start (bin
// folder, port, server user and version filled in) and the start timeout.
func newCluster(ctx context.Context, opts Options) (*Cluster, time.Duration, error) {
	binDir, err := FindBinDir(opts.BinDir)
	if err != nil {
		option := "BinDir"
		if opts.BinDir == "" {
			option = "" // nothing installed where we look
		}
		return nil, 0, &SetupError{Option: option, Err: err}
	}
	port := opts.Port
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		return nil, 0, fmt.Errorf("pgcluster: port %d out of range 1..65535", port)
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = DefaultStartTimeout
	}
	if timeout < 0 {
		return nil, 0, fmt.Errorf("pgcluster: negative start timeout %v", timeout)
	}
	for k := range opts.Settings {
		if !validSettingName(k) {
			return nil, 0, fmt.Errorf("pgcluster: invalid setting name %q", k)
		}
	}
	c := &Cluster{binDir: binDir, port: port}
	if os.Geteuid() == 0 {
		name := opts.ServerUser
		if name == "" {
			name = DefaultServerUser()
		}
		cred, err := lookupCredential(name)
		if err != nil {
			return nil, 0, &SetupError{Option: "ServerUser", Err: fmt.Errorf("running as root, the server must run as an unprivileged OS user: %w", err)}
		}
		c.cred, c.user = cred, name
	}
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("pgcluster: %s --version: %w", filepath.Join(binDir, "postgres"), contextErr(ctx, err))
		}
		return nil, 0, &SetupError{Option: "BinDir", Err: fmt.Errorf("%s --version: %w", filepath.Join(binDir, "postgres"), err)}
	}
	c.version = strings.TrimSpace(string(out))
	return c, timeout, nil
}

// prepareFolders checks the socket path's length, creates the socket
// folder and, when the server runs as another user, gives it the cluster
// folder and checks that it can reach it.
func (c *Cluster) prepareFolders() error {
	if n := len(c.socketPath()); n > maxSocketPath {
		return fmt.Errorf("pgcluster: socket path %s is %d bytes, over the limit of %d; use a temporary folder with a shorter path", c.socketPath(), n, maxSocketPath)
	}
	if err := os.Mkdir(c.socketDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: create socket folder: %w", err)
	}
	if c.cred == nil {
		return nil
	}
	for _, p := range []string{c.root, c.socketDir} {
		if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgcluster: give %s to the server user: %w", p, err)
		}
	}
	return checkSearchable(filepath.Dir(c.root), c.user, c.cred)
}

// startServer starts the server with pg_ctl and waits until it accepts
// connections; errors carry the end of the server log.
func (c *Cluster) startServer(ctx context.Context, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	pgctl := c.serverCommand(ctx, "pg_ctl", "start",
		"--pgdata="+c.dataDir,
		"--log="+c.logFile,
		"--wait",
		"--timeout="+strconv.Itoa(secs),
		"--silent",
	)
	if out, err := pgctl.CombinedOutput(); err != nil {
		// Killed by ctx, pg_ctl may have launched a server that has not
		// written postmaster.pid yet; Stop waits for it.
		c.mayBeStarting = ctx.Err() != nil
		return fmt.Errorf("pgcluster: pg_ctl start: %w\n%s\nserver log:\n%s", contextErr(ctx, err), tail(out, maxLogTail), c.LogTail())
	}
	if err := c.waitReady(ctx, timeout); err != nil {
		return fmt.Errorf("%w\nserver log:\n%s", err, c.LogTail())
	}
	return nil
}

// socketPath is the path of the server's socket file.
func (c *Cluster) socketPath() string {
	return filepath.Join(c.socketDir, ".s.PGSQL."+strconv.Itoa(c.port))
}

// writeConfig appends the cluster's settings to postgresql.conf. Appending
// keeps the file's owner (the server user).
func (c *Cluster) writeConfig(extra map[string]string) error {
	settings := [][2]string{
		{"listen_addresses", ""},
		{"unix_socket_directories", c.socketDir},
		{"port", strconv.Itoa(c.port)},
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"logging_collector", "off"},
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		settings = append(settings, [2]string{k, extra[k]})
	}
	var b strings.Builder
	b.WriteString("\n# added by larder pgcluster: a throwaway cluster, never for real data\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s[0], quoteConf(s[1]))
	}
	path := filepath.Join(c.dataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: open %s: %w", path, err)
	}
	if _, err := io.WriteString(f, b.String()); err != nil {
		_ = f.Close() // the write failed already: that is the error to report
		return fmt.Errorf("pgcluster: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgcluster: write %s: %w", path, err)
	}
	return nil
}

// waitReady polls pg_isready until the server accepts connections, the
// timeout passes or ctx is done.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		cmd := c.Command(ctx, "pg_isready", "--dbname=postgres")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		last = strings.TrimSpace(string(out))
		if ctx.Err() != nil {
			return fmt.Errorf("pgcluster: wait for server: %w", ctx.Err())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("pgcluster: pg_isready: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcluster: server not ready after %v: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: wait for server: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the server (pg_ctl stop -m fast, then -m immediate if that
// fails) and removes the cluster folder. It is safe to call more than once
// and on a partly started cluster; later calls do nothing and return nil.
// It does not take a context: it must run even when the caller's context is
// canceled, and it bounds its own time.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	if c.root == "" {
		return nil
	}
	var errs []error
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	if c.mayBeStarting {
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
		}
	}
	if _, err := os.Stat(pidFile); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout+10*time.Second)
		defer cancel()
		secs := strconv.Itoa(int(stopTimeout / time.Second))
		out, err := c.serverCommand(ctx, "pg_ctl", "stop", "--pgdata="+c.dataDir, "--mode=fast", "--wait", "--timeout="+secs, "--silent").CombinedOutput()
		if err != nil {
			out2, err2 := c.serverCommand(ctx, "pg_ctl", "stop", "--pgdata="+c.dataDir, "--mode=immediate", "--wait", "--silent").CombinedOutput()
			if err2 != nil {
				errs = append(errs, fmt.Errorf("pgcluster: pg_ctl stop: %w\n%s\n%s", err, tail(out, maxLogTail), tail(out2, maxLogTail)))
			}
		}
	}
	if err := os.RemoveAll(c.root); err != nil {
		errs = append(errs, fmt.Errorf("pgcluster: remove cluster folder: %w", err))
	}
	return errors.Join(errs...)
}

// serverCommand prepares a server-side program (initdb, pg_ctl) from the bin
// folder, run as the server user when the caller is root.
func (c *Cluster) serverCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	// The server user may not be able to enter the caller's working folder.
	cmd.Dir = c.root
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// cleanEnv returns the process environment without any PG* variable (a
// stray PGHOSTADDR or PGDATABASE would redirect our commands) and with
// messages in English, so errors are readable whatever the caller's locale.
func cleanEnv() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LANGUAGE=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C", "PGCLIENTENCODING=UTF8")
}

// lookupCredential resolves an OS user name to the credential the server
// programs run with.
func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("there is no OS user %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q has uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q has gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("OS user %q is root; PostgreSQL will not run as root", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// checkSearchable reports an error when the user of cred (named name)
// cannot enter dir or one of its parents (judged by the permission bits).
func checkSearchable(dir, name string, cred *syscall.Credential) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return &SetupError{Option: "Dir", Err: err}
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode().Perm()
			var bit os.FileMode
			switch {
			case st.Uid == cred.Uid:
				bit = 0o100
			case st.Gid == cred.Gid:
				bit = 0o010
			default:
				bit = 0o001
			}
			if mode&bit == 0 {
				return &SetupError{Option: "Dir", Err: fmt.Errorf("the server user %s (uid %d) cannot enter %s (mode %04o, owner uid %d); use a temporary folder it can enter", name, cred.Uid, p, mode, st.Uid)}
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// validSettingName reports whether s looks like a configuration parameter
// name (letters, digits, underscores and dots for extension settings).
func validSettingName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// quoteConf quotes a postgresql.conf value as a string literal.
func quoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, "\n", `\n`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// contextErr prefers the context's error when it ended the command.
func contextErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// readTail returns up to the last n bytes of a file, or a note when it cannot
// be read.
func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	fi, err := f.Stat()
	if err != nil {
		return "(server log: " + err.Error() + ")"
	}
	off := fi.Size() - n
	if off < 0 {
		off = 0
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return "(server log: " + err.Error() + ")"
	}
	return string(b)
}

// tail returns the last n bytes of b as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimRight(string(b), "\n")
}
