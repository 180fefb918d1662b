package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/internal/s3test"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the larder command: scripts
// run "exec larder ..." and testscript re-executes this binary, which
// calls run (age cmd/age/age_test.go does the same). Key files use the
// test-only fast KDF in both the test process and every re-execution.
func TestMain(m *testing.M) {
	crypto.TestOnlyFastKDF()
	testscript.Main(m, map[string]func(){
		"larder": func() { os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// fixtures is the folder of the committed small forum backups.
const fixtures = "../../testdata/small"

// TestScripts runs testdata/script/*.txtar.
//
// Each script starts with:
//
//	$FIX              a copy of testdata/small (classic-gzip1/, dumponly/, 2026/, ...)
//	LARDER_CACHE_DIR  $WORK/cache (never the user's cache)
//
// and can use the commands of scriptCmds and the conditions [nopg] (set
// LARDER_NO_PG=1 to skip the drills that start PostgreSQL) and [root] (the
// tests run as root: drills' PostgreSQL runs as another user).
func TestScripts(t *testing.T) {
	if _, err := os.Stat(filepath.Join(fixtures, "SHA256SUMS")); err != nil {
		t.Fatalf("fixtures missing: %v", err)
	}
	// The scripts run the real tools; a missing one fails here, loudly.
	for _, tool := range []string{"gzip", "tar", "sh", "cmp", "ls", "touch", "python3", "bash", "zsh", "fish", "groff", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the scripts need %s: %v", tool, err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			fix := filepath.Join(env.WorkDir, "fixtures")
			if err := os.CopyFS(fix, os.DirFS(fixtures)); err != nil {
				return fmt.Errorf("copying the fixtures: %w", err)
			}
			env.Setenv("FIX", fix)
			env.Setenv("LARDER_CACHE_DIR", filepath.Join(env.WorkDir, "cache"))
			env.Setenv("TZ", "UTC") // times print in local time
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "nopg":
				return os.Getenv("LARDER_NO_PG") == "1", nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: scriptCmds,
	})
}

// TestScriptsS3 runs testdata/s3/*.txtar against a real S3 server
// (versitygw on loopback, internal/s3test). Besides TestScripts' setup,
// each script has:
//
//	S3REPO                       its own repository location in the bucket
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  the master's credential
//	WRITER_AWS_ACCESS_KEY_ID, WRITER_AWS_SECRET_ACCESS_KEY  the forum
//	                             server's: PutObject, GetObject, ListBucket
//	S3DATA                       the server's folder of the bucket's objects
func TestScriptsS3(t *testing.T) {
	srv := s3test.New(t)
	n := 0
	var mu sync.Mutex
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/s3",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			fix := filepath.Join(env.WorkDir, "fixtures")
			if err := os.CopyFS(fix, os.DirFS(fixtures)); err != nil {
				return fmt.Errorf("copying the fixtures: %w", err)
			}
			mu.Lock()
			n++
			prefix := fmt.Sprintf("script%d", n)
			mu.Unlock()
			env.Setenv("FIX", fix)
			env.Setenv("LARDER_CACHE_DIR", filepath.Join(env.WorkDir, "cache"))
			env.Setenv("S3REPO", srv.URL(prefix))
			env.Setenv("S3DATA", srv.ObjectPath(prefix))
			env.Setenv("AWS_ACCESS_KEY_ID", srv.RootKey)
			env.Setenv("AWS_SECRET_ACCESS_KEY", srv.RootSecret)
			env.Setenv("AWS_DEFAULT_REGION", "us-east-1")
			env.Setenv("WRITER_AWS_ACCESS_KEY_ID", srv.WriterKey)
			env.Setenv("WRITER_AWS_SECRET_ACCESS_KEY", srv.WriterSecret)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "nopg":
				return os.Getenv("LARDER_NO_PG") == "1", nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: scriptCmds,
	})
}

var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"larder-exit": cmdLarderExit,
	"capture":     cmdCapture,
	"jsonlines":   cmdJSONLines,
	"notemp":      cmdNoTemp,
	"nfiles":      cmdNFiles,
	"randfile":    cmdRandFile,
	"truncate":    cmdTruncate,
	"readonly":    cmdReadOnly,
	"tmpfs":       cmdTmpfs,
	"pgtmp":       cmdPGTmp,
	"takelock":    cmdTakeLock,
}

// takelock master|KEYFILE shared|exclusive
//
// Takes a lock on $LARDER_REPO in the test process with the master key
// (stored in the repository, passphrase from $LARDER_PASSWORD_FILE) or a
// passphrase-less key file, and holds it until the script ends: a process
// of this machine that is alive holds it.
func cmdTakeLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || (args[1] != "shared" && args[1] != "exclusive") {
		ts.Fatalf("usage: takelock master|KEYFILE shared|exclusive")
	}
	ctx := context.Background()
	be := backend.OpenLocal(ts.MkAbs(ts.Getenv("LARDER_REPO")))
	var data, pass []byte
	var err error
	if args[0] == "master" {
		data, err = repo.MasterKeyFile(ctx, be)
		ts.Check(err)
		pw, err := os.ReadFile(ts.Getenv("LARDER_PASSWORD_FILE"))
		ts.Check(err)
		pass = bytes.TrimRight(pw, "\n")
	} else {
		data, err = os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
	}
	kf, err := crypto.ParseKeyFile(data, pass)
	ts.Check(err)
	var key repo.Key = kf.Write
	if kf.Master != nil {
		key = kf.Master
	}
	r, err := repo.Open(ctx, be, key)
	ts.Check(err)
	r.SetCacheDir(ts.MkAbs("takelock-cache"))
	l, err := r.Lock(ctx, args[1] == "exclusive")
	ts.Check(err)
	ts.Defer(func() { l.Unlock(ctx); r.Close() })
}

// larder-exit CODE ARGS...
//
// Runs larder ARGS (the same re-executed binary as "exec larder") and
// fails unless it exits with CODE; stdout and stderr are kept for the
// following stdout/stderr commands. "! exec" only says "not zero".
func cmdLarderExit(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: larder-exit CODE ARGS... (no !: the code says it)")
	}
	if len(args) < 1 {
		ts.Fatalf("usage: larder-exit CODE ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("larder-exit: bad code %q", args[0])
	}
	err = ts.Exec("larder", args[1:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		got = ee.ExitCode()
	default:
		ts.Fatalf("larder-exit: %v", err)
	}
	if got != want {
		ts.Fatalf("larder exited with %d, want %d", got, want)
	}
}

// capture VAR REGEXP
//
// Sets VAR to the first submatch of REGEXP (multi-line mode) in the last
// command's stdout; fails if there is none.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 || m[1] == "" {
		ts.Fatalf("capture: no match for %q in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
	ts.Logf("%s=%s", args[0], m[1])
}

// jsonlines [N]
//
// Checks that the last stdout is JSON objects, exactly one per line (N of
// them if given), with nothing else.
func cmdJSONLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: jsonlines [N]")
	}
	out := ts.ReadFile("stdout")
	if out == "" || !strings.HasSuffix(out, "\n") {
		ts.Fatalf("jsonlines: stdout is empty or does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	results := 0
	for i, l := range lines {
		var v map[string]any
		d := json.NewDecoder(strings.NewReader(l))
		if err := d.Decode(&v); err != nil {
			ts.Fatalf("jsonlines: line %d is not a JSON object: %v: %q", i+1, err, l)
		}
		if _, err := d.Token(); err != io.EOF {
			ts.Fatalf("jsonlines: line %d holds more than one JSON value: %q", i+1, l)
		}
		mt, ok := v["message_type"].(string)
		if !ok || mt == "" {
			ts.Fatalf("jsonlines: line %d has no message_type (docs/JSON.md): %q", i+1, l)
		}
		if mt != "status" { // progress lines come with time, not with results
			results++
		}
	}
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		ts.Check(err)
		if results != n {
			ts.Fatalf("jsonlines: %d lines besides status lines, want %d", results, n)
		}
	}
}

// notemp DIR...
//
// Fails if a temporary or half-written file is left anywhere under DIR:
// the repository's ".tmp-*" and restore's ".NAME.larder-*".
func cmdNoTemp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: notemp DIR...")
	}
	for _, dir := range args {
		err := filepath.WalkDir(ts.MkAbs(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			n := d.Name()
			if strings.HasPrefix(n, ".tmp-") || (strings.HasPrefix(n, ".") && strings.Contains(n, ".larder-")) {
				return fmt.Errorf("left behind: %s", p)
			}
			return nil
		})
		ts.Check(err)
	}
}

// nfiles DIR N
//
// Checks that DIR holds N regular files (all levels; a missing DIR holds 0).
func cmdNFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: nfiles DIR N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	got := 0
	err = filepath.WalkDir(ts.MkAbs(args[0]), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && got == 0 {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			got++
		}
		return nil
	})
	ts.Check(err)
	if got != want {
		ts.Fatalf("%s holds %d files, want %d", args[0], got, want)
	}
}

// randfile FILE SIZE SEED
//
// Writes SIZE pseudo-random (incompressible) bytes.
func cmdRandFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: randfile FILE SIZE SEED")
	}
	size, err := strconv.Atoi(args[1])
	ts.Check(err)
	seed, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	b := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	rng.Read(b)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// truncate SRC DST
//
// Writes the first half of SRC to DST.
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate SRC DST")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), b[:len(b)/2], 0o644))
}

// readonly DIR
//
// Makes DIR and everything in it refuse writes until the script ends,
// and sets RO_HOW (how) and RO_ERR (a regexp of the error larder should
// give). Not root: chmod -R a-w. Root ignores modes, so it tries in turn
// chattr -R +i (immutable), a read-only bind mount of DIR onto itself, and
// last replaces DIR/data (or DIR itself if it is named data) with a file
// so that creating data/xx fails. DIR must exist.
func cmdReadOnly(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: readonly DIR")
	}
	dir := ts.MkAbs(args[0])
	set := func(how, errRE string) {
		ts.Setenv("RO_HOW", how)
		ts.Setenv("RO_ERR", errRE)
		ts.Logf("readonly %s: %s", args[0], how)
	}
	if os.Geteuid() != 0 {
		chmodAll(ts, dir, false)
		ts.Defer(func() { chmodAll(ts, dir, true) })
		set("chmod", "read-only")
		return
	}
	var tried []string
	if out, err := exec.Command("chattr", "-R", "+i", dir).CombinedOutput(); err == nil {
		ts.Defer(func() {
			if out, err := exec.Command("chattr", "-R", "-i", dir).CombinedOutput(); err != nil {
				ts.Logf("chattr -R -i %s: %v: %s", dir, err, out)
			}
		})
		set("chattr", "read-only")
		return
	} else {
		tried = append(tried, fmt.Sprintf("chattr: %v: %s", err, bytes.TrimSpace(out)))
		exec.Command("chattr", "-R", "-i", dir).Run() // undo a partial run
	}
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err == nil {
		ts.Defer(func() { umount(ts, dir) })
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err == nil {
			set("bind-ro", "read-only")
			return
		} else {
			tried = append(tried, fmt.Sprintf("remount ro: %v: %s", err, bytes.TrimSpace(out)))
		}
	} else {
		tried = append(tried, fmt.Sprintf("mount --bind: %v: %s", err, bytes.TrimSpace(out)))
	}
	ts.Logf("readonly: %s", strings.Join(tried, "; "))
	data := filepath.Join(dir, "data") // readonly REPO
	if filepath.Base(dir) == "data" {  // readonly REPO/data
		data = dir
	}
	ts.Check(os.Rename(data, data+".saved"))
	ts.Check(os.WriteFile(data, []byte("not a folder\n"), 0o444))
	ts.Defer(func() {
		os.Remove(data)
		os.Rename(data+".saved", data)
	})
	set("datafile", "not a directory")
}

func chmodAll(ts *testscript.TestScript, dir string, writable bool) {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm() &^ 0o222
		if writable {
			mode |= 0o200
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		ts.Logf("chmod %s: %v", dir, err)
	}
}

// tmpfs DIR SIZE
//
// Mounts a tmpfs of SIZE (e.g. 256k) on DIR (created) until the script
// ends. Fails if the sandbox cannot mount: that test must not pass
// without the full disk it is about.
func cmdTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tmpfs DIR SIZE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+args[1], "tmpfs", dir).CombinedOutput()
	if err != nil {
		ts.Fatalf("cannot mount a tmpfs on %s (the full-disk test needs it; run as root): %v: %s", dir, err, bytes.TrimSpace(out))
	}
	ts.Defer(func() { umount(ts, dir) })
}

func umount(ts *testscript.TestScript, dir string) {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		ts.Logf("umount %s: %v: %s", dir, err, out)
	}
}

// pgtmp VAR
//
// Sets VAR to a new folder for "drill --postgres --tmp" that the
// PostgreSQL server user can enter: as root the server runs as an
// unprivileged user, and $WORK sits in a mode 0700 folder. When the script
// ends, a server "drill --keep" left running there is stopped.
func cmdPGTmp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pgtmp VAR")
	}
	dir, err := os.MkdirTemp("", "larder-drill-")
	ts.Check(err)
	ts.Defer(func() {
		stopKept(ts, dir)
		os.RemoveAll(dir)
	})
	ts.Check(os.Chmod(dir, 0o755))
	ts.Setenv(args[0], dir)
}

// stopKept stops (SIGQUIT: immediate shutdown) the servers of clusters
// left running in dir, so that a script failing after "drill --keep"
// leaves no process behind.
func stopKept(ts *testscript.TestScript, dir string) {
	pids, _ := filepath.Glob(filepath.Join(dir, "pgcluster-*", "data", "postmaster.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
			ts.Logf("stopping the server %d that the script kept running", pid)
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
}
