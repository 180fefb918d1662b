package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/larder/larder/internal/testenv"
)

// TestExitCodesDocumented: the man page's exit codes are README.md's,
// every one of them.
func TestExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no Exit codes section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	var documented []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(table, -1) {
		n, _ := strconv.Atoi(m[1])
		documented = append(documented, n)
	}
	var man []int
	for _, e := range exitCodes {
		man = append(man, e.code)
	}
	if len(documented) < 10 || !slices.Equal(documented, man) {
		t.Errorf("README.md's exit codes %v, the man page's %v", documented, man)
	}
}

// TestMakeInstall runs make install into a staging folder (DESTDIR, with
// PREFIX=/usr): the binary, the man page and the three completion
// scripts, each where its tools look, and made by the binary installed.
func TestMakeInstall(t *testing.T) {
	testenv.NeedTool(t, "make")
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "larder")
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	want := map[string]os.FileMode{
		"usr/bin/larder":                                  0o755,
		"usr/share/man/man1/larder.1":                     0o644,
		"usr/share/bash-completion/completions/larder":    0o644,
		"usr/share/zsh/site-functions/_larder":            0o644,
		"usr/share/fish/vendor_completions.d/larder.fish": 0o644,
	}
	var got []string
	err := filepath.WalkDir(dest, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			got = append(got, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("installed %v, want the %d files of %v", got, len(want), want)
	}
	for f, mode := range want {
		fi, err := os.Stat(filepath.Join(dest, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != mode || fi.Size() == 0 {
			t.Errorf("%s: mode %v, %d bytes; want %v and content", f, fi.Mode().Perm(), fi.Size(), mode)
		}
	}
	installed := filepath.Join(dest, "usr/bin/larder")
	for f, args := range map[string][]string{
		"usr/share/man/man1/larder.1":                     {"man"},
		"usr/share/bash-completion/completions/larder":    {"completion", "bash"},
		"usr/share/zsh/site-functions/_larder":            {"completion", "zsh"},
		"usr/share/fish/vendor_completions.d/larder.fish": {"completion", "fish"},
	} {
		out, err := exec.Command(installed, args...).Output()
		if err != nil {
			t.Fatalf("larder %v: %v", args, err)
		}
		b, err := os.ReadFile(filepath.Join(dest, f))
		if err != nil || string(b) != string(out) {
			t.Errorf("%s is not what larder %s prints (%v)", f, strings.Join(args, " "), err)
		}
	}
	// uninstall removes them all
	cmd = exec.Command("make", "-C", "../..", "uninstall", "DESTDIR="+dest, "PREFIX=/usr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make uninstall: %v\n%s", err, out)
	}
	for f := range want {
		if _, err := os.Stat(filepath.Join(dest, f)); !os.IsNotExist(err) {
			t.Errorf("%s after make uninstall: %v", f, err)
		}
	}
}
