package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docsSystemd is the folder of the systemd units docs/OPERATIONS.md
// tells people to install.
const docsSystemd = "../../docs/systemd"

// larderPath is where the documented units and cron line expect larder.
const larderPath = "/usr/local/bin/larder"

// acceptsArgs runs larder's own parser over a documented command line: the
// repository does not exist, so a command whose options all parse gets as
// far as opening it (exit 10); a wrong option or argument is exit 2.
func acceptsArgs(t *testing.T, what string, args []string) {
	t.Helper()
	t.Setenv("LARDER_REPO", filepath.Join(t.TempDir(), "no-repo"))
	t.Setenv("LARDER_KEY", "")
	var stderr bytes.Buffer
	code := run(append([]string{"larder"}, args...), strings.NewReader(""), io.Discard, &stderr)
	if code != exitNoRepo {
		t.Errorf("%s: larder %s exited %d, want %d (options parsed, no repository): %s", what, strings.Join(args, " "), code, exitNoRepo, stderr.String())
	}
}

// The systemd units in docs/systemd parse (systemd-analyze verify, with
// ExecStart pointed at an executable that exists here), and each one's
// larder command line is one larder accepts.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze (Debian package systemd) is needed to verify docs/systemd: %v", err)
	}
	units, err := filepath.Glob(filepath.Join(docsSystemd, "larder-*"))
	if err != nil || len(units) < 6 {
		t.Fatalf("docs/systemd: %d units (%v), want the ingest, status and drill services and timers", len(units), err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	services := 0
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(u, ".service") {
			services++
			line := regexp.MustCompile(`(?m)^ExecStart=` + regexp.QuoteMeta(larderPath) + ` (.*)$`).FindStringSubmatch(text)
			if line == nil {
				t.Errorf("%s: no ExecStart=%s line", u, larderPath)
				continue
			}
			if strings.ContainsAny(line[1], `"'\$%`) {
				t.Errorf("%s: ExecStart has quoting or specifiers this test does not read: %s", u, line[1])
			}
			acceptsArgs(t, filepath.Base(u), strings.Fields(line[1]))
			text = strings.ReplaceAll(text, "ExecStart="+larderPath, "ExecStart="+self)
		}
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if services != 3 {
		t.Errorf("%d services in docs/systemd, want 3", services)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The cron line in docs/OPERATIONS.md is five valid time fields, a user,
// and a shell command that sh parses, and its larder command line is one
// larder accepts.
func TestCronLine(t *testing.T) {
	b, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```cron\n(.*?)```").FindSubmatch(b)
	if block == nil {
		t.Fatal("docs/OPERATIONS.md has no ```cron block")
	}
	lines := strings.Split(strings.TrimSpace(string(block[1])), "\n")
	if len(lines) != 1 {
		t.Fatalf("cron block: %d lines, want 1", len(lines))
	}
	f := strings.Fields(lines[0])
	if len(f) < 7 {
		t.Fatalf("cron line %q: want 5 time fields, a user and a command", lines[0])
	}
	limits := []struct {
		name     string
		min, max int
	}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7}}
	for i, l := range limits {
		if f[i] == "*" {
			continue
		}
		n, err := strconv.Atoi(f[i])
		if err != nil || n < l.min || n > l.max {
			t.Errorf("cron %s %q: want * or %d to %d", l.name, f[i], l.min, l.max)
		}
	}
	if f[5] != "root" {
		t.Errorf("cron user %q: the backups are root's (docs/OPERATIONS.md says so)", f[5])
	}
	cmd := strings.Join(f[6:], " ")
	if out, err := exec.Command("sh", "-n", "-c", cmd).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v: %s", err, out)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(larderPath) + ` ([^;&|>]*)`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("cron command %q does not run %s", cmd, larderPath)
	}
	acceptsArgs(t, "cron", strings.Fields(m[1]))
}
