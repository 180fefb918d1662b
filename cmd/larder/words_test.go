package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlural(t *testing.T) {
	cases := []struct {
		n    int
		want string
	}{{0, "0 problems"}, {1, "1 problem"}, {2, "2 problems"}, {11, "11 problems"}}
	for _, tc := range cases {
		if got := plural(tc.n, "problem", "problems"); got != tc.want {
			t.Errorf("plural(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := plural(uint64(1), "pack is", "packs are"); got != "1 pack is" {
		t.Errorf("plural(uint64(1)) = %q", got)
	}
}

// TestRatioText pins the ratio wording: never "1.0x larger" for 0.96 (the
// issue's example), never "1.0x smaller".
func TestRatioText(t *testing.T) {
	cases := []struct {
		original, stored uint64
		want             string
	}{
		{9600, 10000, "4% larger"}, // a ratio of 0.96
		{10000, 9600, "4% smaller"},
		{10000, 10040, "the same size"},
		{10000, 9960, "the same size"},
		{10000, 10100, "1% larger"},
		{10000, 5001, "50% smaller"},
		{10000, 5000, "2.0x smaller"},
		{45600, 4600, "9.9x smaller"},
		{5000, 10000, "2.0x larger"},
		{100, 1000, "10.0x larger"},
		{0, 120, "an empty file"},
		{1000, 0, "nothing new stored"},
		{0, 0, "nothing stored"},
	}
	for _, tc := range cases {
		if got := ratioText(tc.original, tc.stored); got != tc.want {
			t.Errorf("ratioText(%d, %d) = %q, want %q", tc.original, tc.stored, got, tc.want)
		}
	}
}

// TestInterrupted: a command stopped by Ctrl-C (its context cancelled)
// says "interrupted", not Go's "context canceled", and exits 130.
func TestInterrupted(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw for larder tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LARDER_CACHE_DIR", filepath.Join(dir, "cache"))
	base := []string{"larder", "-r", filepath.Join(dir, "repo"), "--password-file", pw}
	var stdout, stderr bytes.Buffer
	if code := runContext(context.Background(), append(base, "init"), strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("init: exit code %d: %s", code, stderr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, cmd := range [][]string{
		{"ingest", filepath.Join(fixtures, "dumponly")},
		{"snapshots"},
	} {
		stdout.Reset()
		stderr.Reset()
		code := runContext(ctx, append(base, cmd...), strings.NewReader(""), &stdout, &stderr)
		if code != exitInterrupted || stderr.String() != "larder: interrupted\n" {
			t.Errorf("%s: exit code %d, stderr %q; want %d, \"larder: interrupted\\n\"", cmd[0], code, stderr.String(), exitInterrupted)
		}
	}
}
