package pgcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestDefaultServerUser(t *testing.T) {
	if got := defaultServerUser(func(string) bool { return true }); got != "postgres" {
		t.Errorf("with a postgres user: %q, want postgres", got)
	}
	if got := defaultServerUser(func(n string) bool { return n != "postgres" }); got != "nobody" {
		t.Errorf("without a postgres user (a Discourse Docker host): %q, want nobody", got)
	}
	want := "nobody"
	if _, err := user.Lookup("postgres"); err == nil {
		want = "postgres"
	}
	if got := DefaultServerUser(); got != want {
		t.Errorf("DefaultServerUser() = %q on this machine, want %q", got, want)
	}
}

// TestCheckRejectsWhatStartCannotUse: every operator mistake is a
// SetupError naming the option, found before anything starts.
func TestCheckRejectsWhatStartCannotUse(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	s, err := Check(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Version, "PostgreSQL") || s.BinDir == "" {
		t.Errorf("Check found %+v", s)
	}
	root := os.Geteuid() == 0
	if wantUser := map[bool]string{true: DefaultServerUser(), false: ""}[root]; s.ServerUser != wantUser {
		t.Errorf("server user %q, want %q", s.ServerUser, wantUser)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(reachableTempDir(t), strings.Repeat("d", 90))
	if err := os.Mkdir(long, 0o755); err != nil {
		t.Fatal(err)
	}
	type badCase struct {
		name   string
		opts   Options
		option string
		says   string
	}
	cases := []badCase{
		{"bin folder", Options{BinDir: t.TempDir()}, "BinDir", "lacks initdb"},
		{"missing folder", Options{Dir: "/nonexistent/larder"}, "Dir", "temporary folder /nonexistent/larder does not exist"},
		{"a file", Options{Dir: file}, "Dir", "is not a folder"},
		{"long folder", Options{Dir: long}, "Dir", "over the limit of 107"},
	}
	if root {
		private := t.TempDir() // mode 0700, in a mode 0700 parent
		cases = append(cases,
			badCase{"unknown user", Options{ServerUser: "larder-no-such-user"}, "ServerUser", `there is no OS user "larder-no-such-user"`},
			badCase{"root user", Options{ServerUser: "root"}, "ServerUser", `OS user "root" is root`},
			badCase{"private folder", Options{Dir: private}, "Dir", "the server user " + DefaultServerUser() + " (uid "},
		)
	} else if _, err := Check(ctx, Options{ServerUser: "larder-no-such-user"}); err != nil {
		t.Errorf("not root, the server user is ignored, yet: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(ctx, tc.opts)
			var se *SetupError
			if !errors.As(err, &se) || se.Option != tc.option || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Check(%+v) = %v, want a SetupError on %s saying %q", tc.opts, err, tc.option, tc.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("more than one line: %q", err)
			}
		})
	}
}

// TestServerUserNobody runs the cluster as "nobody", as on a root host
// without a postgres user; not as root, it runs as the caller.
func TestServerUserNobody(t *testing.T) {
	needPostgres(t)
	c := startCluster(t, Options{Dir: reachableTempDir(t), ServerUser: "nobody"})
	fi, err := os.Stat(filepath.Join(c.Dir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	want, wantName := uint32(os.Geteuid()), ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		want, wantName = uint32(uid), "nobody"
	}
	if got := fi.Sys().(*syscall.Stat_t).Uid; got != want || c.ServerUser() != wantName {
		t.Errorf("data folder owned by uid %d, server user %q; want uid %d, %q", got, c.ServerUser(), want, wantName)
	}
	if _, err := c.Query(context.Background(), "postgres", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestClientEnvAndStopCommand: a command run with ClientEnv reaches the
// cluster whatever PG* variables the caller has, and StopCommand, run by
// a shell as an operator would, stops the server and removes its folder.
func TestClientEnvAndStopCommand(t *testing.T) {
	needPostgres(t)
	t.Setenv("PGHOST", "/nonexistent")
	t.Setenv("PGDATABASE", "nosuchdb")
	c := startCluster(t, Options{Dir: reachableTempDir(t)})
	ctx := context.Background()
	if err := c.CreateDatabase(ctx, "rehearsal"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `psql -XtAc "SELECT current_database(), current_user" && command -v psql`)
	cmd.Env = c.ClientEnv("rehearsal")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "rehearsal|postgres\n" + filepath.Join(c.BinDir(), "psql") + "\n"; string(out) != want {
		t.Errorf("the command printed %q, want %q", out, want)
	}
	connect := exec.Command("sh", "-c", c.ConnectCommand("rehearsal")+` -XtAc "SELECT 6*7"`)
	if out, err := connect.CombinedOutput(); err != nil || string(out) != "42\n" {
		t.Errorf("%s: %q, %v", c.ConnectCommand("rehearsal"), out, err)
	}
	stop := c.StopCommand()
	if os.Geteuid() == 0 && !strings.HasPrefix(stop, "(cd / && runuser -u "+c.ServerUser()+" -- ") {
		t.Errorf("as root the stop command must run pg_ctl as the server user: %s", stop)
	}
	if out, err := exec.Command("sh", "-c", stop).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", stop, err, out)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after %s the cluster folder is still there: %v", stop, err)
	}
	if procs := processesMentioning(c.Dir()); len(procs) > 0 {
		t.Errorf("after %s processes still run: %q", stop, procs)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/lib/postgresql/15/bin/pg_ctl": "/usr/lib/postgresql/15/bin/pg_ctl",
		"":                                  "''",
		"/tmp/a b":                          "'/tmp/a b'",
		"it's":                              `'it'\''s'`,
		"$(rm -rf /)":                       "'$(rm -rf /)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestShortVersion(t *testing.T) {
	for in, want := range map[string]string{
		"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": "PostgreSQL 15.18",
		"postgres (PostgreSQL) 17.2":                           "PostgreSQL 17.2",
		"something else":                                       "something else",
	} {
		if got := ShortVersion(in); got != want {
			t.Errorf("ShortVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
