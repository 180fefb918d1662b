package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestProgressInNarrowTerminal runs an ingest and a restore in a real
// terminal 60 columns wide (tmux) and reads both what was drawn (the raw
// output, via pipe-pane) and what is left on the screen: the bar shows
// file N of M, %, bytes and rate, never runs past 60 columns, and leaves
// no stale rows behind once the results are printed.
func TestProgressInNarrowTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatalf("the progress test needs tmux (Debian package tmux): %v", err)
	}
	gz, err := exec.LookPath("gzip")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary is larder when called by that name (TestMain).
	if err := os.Symlink(self, filepath.Join(bin, "larder")); err != nil {
		t.Fatal(err)
	}
	// A backup big enough for the bar to be drawn more than once.
	data := make([]byte, 24<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	raw := filepath.Join(work, "big")
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gz, "-1", "-k", raw).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v: %s", err, out)
	}
	env := []string{"LARDER_REPO=" + filepath.Join(work, "repo"), "LARDER_PASSWORD_FILE=" + filepath.Join(work, "pw"),
		"LARDER_CACHE_DIR=" + filepath.Join(work, "cache"), "PATH=" + bin + ":" + os.Getenv("PATH"), "TERM=xterm-256color"}
	if err := os.WriteFile(filepath.Join(work, "pw"), []byte("a passphrase for the test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`cd %s && while [ ! -f go ]; do sleep 0.05; done
larder init >/dev/null && larder ingest --site test big.gz %s && larder restore latest --site test -o back.gz && cmp back.gz big.gz && larder drill --latest --no-record && echo DONE-OK || echo DONE-FAILED
sleep 600`, work, filepath.Join(absFixtures(t), "dumponly"))
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	sock := "larder-test-" + fmt.Sprint(os.Getpid())
	tm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", "p", "-x", "60", "-y", "30", "env "+strings.Join(env, " ")+" sh "+filepath.Join(work, "run.sh"))
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", sock, "kill-server").Run() })
	rawLog := filepath.Join(work, "raw.log")
	tm("pipe-pane", "-t", "p", "-o", "cat >> "+rawLog)
	if err := os.WriteFile(filepath.Join(work, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var screen string
	deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a speed limit
	for {
		screen = tm("capture-pane", "-t", "p", "-p")
		if strings.Contains(screen, "DONE-") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(screen, "DONE-OK") {
		t.Fatalf("the run did not finish well; screen:\n%s", screen)
	}
	// The screen holds results only: no bar, no remnant of one.
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "% |") || strings.Contains(l, "█") || strings.Contains(l, "hash ") || strings.Contains(l, "/s)") {
			t.Errorf("a stale progress row is left on the screen: %q\n%s", l, screen)
		}
	}
	if !strings.Contains(screen, "stored big.gz as snapshot") || !strings.Contains(screen, "restored back.gz") || !strings.Contains(screen, "drill ") {
		t.Errorf("results missing from the screen:\n%s", screen)
	}
	b, err := os.ReadFile(rawLog)
	if err != nil {
		t.Fatal(err)
	}
	ansi := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	var bars []string
	for _, piece := range regexp.MustCompile(`[\r\n]`).Split(ansi.ReplaceAllString(string(b), ""), -1) {
		if strings.Contains(piece, "% |") {
			bars = append(bars, piece)
		}
	}
	want := map[string]*regexp.Regexp{
		"ingest, file N of M": regexp.MustCompile(`^\[[1-3]/3\] (hash|store) big\.gz +[0-9]+% \|`),
		"bytes and rate":      regexp.MustCompile(`\([0-9.]+/[0-9.]+ [kMG]?B, [0-9.]+ [kMG]?B/s\)`),
		"time left":           regexp.MustCompile(`\[[0-9]+s:[0-9]+s\]$`),
		"restore":             regexp.MustCompile(`^restore +[0-9]+% \|`),
	}
	for what, re := range want {
		found := false
		for _, l := range bars {
			found = found || re.MatchString(strings.TrimSpace(l))
		}
		if !found {
			t.Errorf("no progress line shows %s (%s); lines drawn:\n%s", what, re, strings.Join(bars, "\n"))
		}
	}
	// restore and the drill's restore each drew a finished bar.
	finished := 0
	for _, l := range bars {
		if strings.HasPrefix(strings.TrimSpace(l), "restore  100% |") {
			finished++
		}
	}
	if finished < 2 {
		t.Errorf("%d finished restore bars, want one of restore and one of drill", finished)
	}
	for _, l := range bars {
		if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > 60 {
			t.Errorf("a progress line of %d columns in a 60-column terminal: %q", n, l)
		}
	}
}

// absFixtures is the committed fixtures' folder, absolute.
func absFixtures(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
