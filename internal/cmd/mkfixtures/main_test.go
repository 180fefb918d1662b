package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/internal/testenv"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-out", "x", "-preset", "small", "-formats", "classic,zulip", "-outer-level", "1,5,1", "-seed", "7", "-upload-bytes", "2G", "-every-night", "classic-gzip5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.formats, []string{"classic", "zulip"}) || !slices.Equal(cfg.levels, []int{1, 5}) ||
		cfg.seed != 7 || !cfg.seedSet || cfg.uploads != 2<<30 {
		t.Errorf("parsed %+v", cfg)
	}
	kinds := []string{}
	for _, o := range cfg.outputs() {
		kinds = append(kinds, o.kind)
	}
	if !slices.Equal(kinds, []string{"classic-gzip1", "classic-gzip5", "zulip"}) {
		t.Errorf("outputs %v", kinds)
	}
	if cfg.isEveryNight("classic-gzip1") || !cfg.isEveryNight("classic-gzip5") || cfg.isEveryNight("zulip") {
		t.Error("isEveryNight is wrong")
	}

	for _, bad := range [][]string{
		{},
		{"-out", "x", "-preset", "huge"},
		{"-out", "x", "-formats", "classic,rar"},
		{"-out", "x", "-outer-level", "0"},
		{"-out", "x", "-outer-level", "10"},
		{"-out", "x", "-seed", "-1"},
		{"-out", "x", "-upload-bytes", "2T"},
		{"-out", "x", "-nights", "-2"},
		{"-out", "x", "extra"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "5K": 5 << 10, "5m": 5 << 20, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "1.5G", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

// TestRunResumes runs the command on the small preset (PostgreSQL needed),
// then again (nothing to do), then after losing a file (it is rebuilt, the
// rest skipped), then with other flags (refused).
func TestRunResumes(t *testing.T) {
	testenv.NeedPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	args := []string{"-out", out, "-preset", "small", "-nights", "1", "-formats", "classic,dumponly"}
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(ctx, cfg, &stdout); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*", "*"))
	if len(files) != 2 || strings.Count(stdout.String(), "wrote ") != 2 {
		t.Fatalf("first run made %v and printed:\n%s", files, stdout.String())
	}

	stdout.Reset()
	if err := run(ctx, cfg, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "up to date") {
		t.Errorf("second run printed:\n%s", stdout.String())
	}

	// Interrupted run: the stamp is not complete and one file is missing.
	stamp := filepath.Join(out, stampName)
	data, err := os.ReadFile(stamp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stamp, bytes.Replace(data, []byte(" complete"), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run(ctx, cfg, &stdout); err != nil {
		t.Fatal(err)
	}
	if strings.Count(stdout.String(), "wrote ") != 1 || strings.Count(stdout.String(), "skipped") != 1 {
		t.Errorf("resumed run printed:\n%s", stdout.String())
	}
	if _, err := os.Stat(files[0]); err != nil {
		t.Errorf("resumed run did not rebuild %s: %v", files[0], err)
	}

	other, err := parseFlags(append(args, "-seed", "9"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, other, io.Discard); err == nil || !strings.Contains(err.Error(), "other flags") {
		t.Errorf("run with other flags into the same folder: err = %v", err)
	}
}
