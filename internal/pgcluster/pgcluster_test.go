package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needPostgres fails the test when PostgreSQL is missing, unless the caller
// set LARDER_NO_PG=1 to say so on purpose.
func needPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv("LARDER_NO_PG") == "1" {
		t.Skip("LARDER_NO_PG=1: skipping a test that needs a PostgreSQL server")
	}
	if _, err := FindBinDir(""); err != nil {
		t.Fatalf("PostgreSQL is required for this test (install postgresql, or set LARDER_NO_PG=1 to skip): %v", err)
	}
}

// startCluster starts a cluster and stops it when the test ends.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

// reachableTempDir returns a temporary folder the server user can enter
// (t.TempDir's parent is private to root), removed when the test ends.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLifecycle(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	c := startCluster(t, Options{})
	if !strings.Contains(c.Version(), "PostgreSQL") {
		t.Errorf("Version() = %q, want a PostgreSQL version line", c.Version())
	}
	if err := c.CreateDatabase(ctx, "larder test"); err != nil {
		t.Fatal(err)
	}
	err := c.Exec(ctx, "larder test", `
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t VALUES (1, 'plain'), (2, 'comma, "quote"'), (3, E'two\nlines'), (4, NULL);
VACUUM t;`)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "larder test", "SELECT id, v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"1", "plain"}, {"2", `comma, "quote"`}, {"3", "two\nlines"}, {"4", ""}}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows %q, want %q", len(rows), rows, want)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], want[i])
		}
	}

	// The client wrapper connects pg_dump to the cluster.
	out, err := c.Command(ctx, "pg_dump", "--table=t", "larder test").Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !strings.Contains(string(out), "CREATE TABLE public.t") {
		t.Errorf("pg_dump output lacks the table:\n%s", out)
	}

	// An SQL error comes back as an error with psql's message.
	err = c.Exec(ctx, "larder test", "SELECT * FROM no_such_table;")
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("Exec of a bad query: err = %v, want one naming no_such_table", err)
	}

	if err := c.DropDatabase(ctx, "larder test"); err != nil {
		t.Fatal(err)
	}

	dir := c.Dir()
	if len(processesMentioning(dir)) == 0 {
		t.Errorf("no process mentions the running cluster's folder %s", dir)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster folder %s still there after Stop (stat: %v)", dir, err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestQueryFuncStopsOnCallbackError(t *testing.T) {
	needPostgres(t)
	c := startCluster(t, Options{})
	stop := errors.New("enough")
	n := 0
	err := c.QueryFunc(context.Background(), "postgres", "SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g", func(row []string) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("QueryFunc: err = %v, want the callback's error", err)
	}
	if n != 3 {
		t.Fatalf("callback ran %d times after returning an error at 3", n)
	}
}

func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	needPostgres(t)
	parent := reachableTempDir(t)
	_, err := Start(context.Background(), Options{
		Dir:      parent,
		Settings: map[string]string{"shared_buffers": "not a size"},
	})
	if err == nil {
		t.Fatal("Start with an invalid setting succeeded")
	}
	if !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("error does not carry the server log's complaint about shared_buffers:\n%v", err)
	}
	left, _ := filepath.Glob(filepath.Join(parent, "pgcluster-*"))
	if len(left) > 0 {
		t.Errorf("failed Start left %v behind", left)
	}
}

// TestStartCanceled cancels Start at several points of the startup and
// checks that nothing is left behind: no folder, no server process.
func TestStartCanceled(t *testing.T) {
	needPostgres(t)
	parent := reachableTempDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Start(ctx, Options{Dir: parent}); err == nil {
		c.Stop()
		t.Fatal("Start with a canceled context succeeded")
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	// Cancel early (during initdb), later, and while waiting for a running
	// server that does not answer: pre_auth_delay holds every connection,
	// so pg_isready never succeeds and the deadline strikes in the wait.
	cases := []struct {
		after time.Duration
		opts  Options
	}{
		{100 * time.Millisecond, Options{Dir: parent}},
		{700 * time.Millisecond, Options{Dir: parent}},
		{3 * time.Second, Options{Dir: parent, Settings: map[string]string{"pre_auth_delay": "4s"}}},
	}
	for _, tc := range cases {
		d := tc.after
		ctx, cancel := context.WithTimeout(context.Background(), d)
		c, err := Start(ctx, tc.opts)
		cancel()
		if err == nil {
			// Fast machine: the start beat the deadline.
			if err := c.Stop(); err != nil {
				t.Error(err)
			}
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("after %v: err = %v, want it to wrap context.DeadlineExceeded", d, err)
		} else {
			first, _, _ := strings.Cut(err.Error(), "\n")
			t.Logf("after %v: %s", d, first)
		}
		left, _ := filepath.Glob(filepath.Join(parent, "pgcluster-*"))
		if len(left) > 0 {
			t.Errorf("after %v: Start left %v behind", d, left)
		}
		if procs := processesMentioning(parent); len(procs) > 0 {
			t.Errorf("after %v: processes still running: %q", d, procs)
		}
	}
}

// processesMentioning lists the command lines (from /proc) that contain s.
func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			out = append(out, cmd)
		}
	}
	return out
}

func TestStartRejectsBadOptions(t *testing.T) {
	needPostgres(t)
	for name, opts := range map[string]Options{
		"port":         {Port: 70000},
		"setting name": {Settings: map[string]string{"bad name; DROP": "1"}},
		"long dir":     {Dir: "/tmp/" + strings.Repeat("d", 120)},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "long dir" {
				if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(opts.Dir) })
			}
			c, err := Start(context.Background(), opts)
			if err == nil {
				c.Stop()
				t.Fatalf("Start(%+v) succeeded", opts)
			}
		})
	}
}

func TestFindBinDir(t *testing.T) {
	if _, err := FindBinDir(t.TempDir()); !errors.Is(err, ErrNoPostgres) {
		t.Errorf("FindBinDir(empty folder): err = %v, want ErrNoPostgres", err)
	}
	if os.Getenv("LARDER_NO_PG") == "1" {
		t.Skip("LARDER_NO_PG=1: not looking for a real installation")
	}
	dir, err := FindBinDir("")
	if err != nil {
		t.Fatalf("PostgreSQL is required (or set LARDER_NO_PG=1): %v", err)
	}
	again, err := FindBinDir(dir)
	if err != nil || again != dir {
		t.Errorf("FindBinDir(%q) = %q, %v; want the same folder", dir, again, err)
	}
	viaProgram, err := FindBinDir(filepath.Join(dir, "pg_ctl"))
	if err != nil || viaProgram != dir {
		t.Errorf("FindBinDir(pg_ctl path) = %q, %v; want %q", viaProgram, err, dir)
	}
}

func TestTailWriter(t *testing.T) {
	var w tailWriter
	for i := 0; i < 3*maxStderr/10; i++ {
		w.Write([]byte("0123456789"))
	}
	w.Write([]byte("end"))
	s := w.String()
	if len(s) != maxStderr || !strings.HasSuffix(s, "789end") {
		t.Errorf("tail has %d bytes ending %q", len(s), s[len(s)-6:])
	}
	w.Write([]byte(strings.Repeat("y", 2*maxStderr)))
	if len(w.String()) != maxStderr {
		t.Errorf("after a large write the tail has %d bytes", len(w.String()))
	}
}

func TestQuoteConf(t *testing.T) {
	for in, want := range map[string]string{
		"":      "''",
		"a'b":   "'a''b'",
		`c:\d`:  `'c:\\d'`,
		"x\ny":  `'x\ny'`,
		"/tmp/": "'/tmp/'",
	} {
		if got := quoteConf(in); got != want {
			t.Errorf("quoteConf(%q) = %s, want %s", in, got, want)
		}
	}
}
