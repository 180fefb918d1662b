// Command mkfixtures builds forum backup fixtures with the real tools
// (PostgreSQL's pg_dump, GNU tar, GNU gzip) through package fixture.
//
// Usage:
//
//	go run ./internal/cmd/mkfixtures -out DIR [-preset small|medium|bench] [-nights N]
//	    [-formats classic,dumponly,2026,v15,zulip] [-outer-level 1[,5...]] [-seed N]
//	    [-every-night classic,dumponly] [-upload-bytes SIZE] [-site NAME] [-v]
//
// Each output goes to DIR/<kind>/<file>, where kind is classic-gzip<N> (one
// per outer level), dumponly, 2026, v15 or zulip. Kinds named by
// -every-night ("classic" names every classic-gzip<N>) are written every
// night; the others on the last night only.
//
// Re-running with the same flags does nothing once a run has completed
// (DIR/.mkfixtures records the flags); an interrupted run is resumed,
// skipping the files that exist. Every file is built under a temporary name
// and renamed into place. Running with other flags into the same DIR is an
// error. mkfixtures prints each file it wrote with its size.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/larder/larder/internal/fixture"
)

// allFormats are the format names -formats accepts, in writing order.
var allFormats = []string{"classic", "dumponly", "2026", "v15", "zulip"}

// stampName records the flags of the run that made an output folder.
const stampName = ".mkfixtures"

// config is the parsed command line.
type config struct {
	out        string
	preset     string
	nights     int
	formats    []string
	levels     []int
	everyNight []string
	seed       uint64
	seedSet    bool
	uploads    int64
	site       string
	pgBin      string
	verbose    bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfixtures:", err)
		os.Exit(2)
	}
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixtures:", err)
		os.Exit(1)
	}
}

// parseFlags parses the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mkfixtures", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.out, "out", "", "output `folder` (required)")
	fs.StringVar(&cfg.preset, "preset", "medium", "size preset: small, medium or bench")
	fs.IntVar(&cfg.nights, "nights", 0, "number of nights (0: the preset's)")
	formats := fs.String("formats", strings.Join(allFormats, ","), "formats to write: "+strings.Join(allFormats, ","))
	levels := fs.String("outer-level", "1", "outer gzip level(s) of classic backups, comma-separated")
	every := fs.String("every-night", "classic,dumponly", "kinds written every night (others: last night only)")
	seed := fs.String("seed", "", "content seed (default: the preset's)")
	size := fs.String("upload-bytes", "", "first night's upload bytes, e.g. 5M or 1G (default: the preset's)")
	fs.StringVar(&cfg.site, "site", "", "site title in file names (default "+fixture.DefaultSite+")")
	fs.StringVar(&cfg.pgBin, "pg-bin", "", "PostgreSQL bin `folder` (default: found automatically)")
	fs.BoolVar(&cfg.verbose, "v", false, "log each step")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.out == "" {
		return cfg, errors.New("-out is required")
	}
	if _, err := fixture.Preset(cfg.preset); err != nil {
		return cfg, err
	}
	if cfg.nights < 0 {
		return cfg, fmt.Errorf("-nights %d is negative", cfg.nights)
	}
	var err error
	if cfg.formats, err = parseList(*formats, allFormats); err != nil {
		return cfg, fmt.Errorf("-formats: %w", err)
	}
	if cfg.levels, err = parseLevels(*levels); err != nil {
		return cfg, fmt.Errorf("-outer-level: %w", err)
	}
	if cfg.everyNight, err = parseList(*every, append(slices.Clone(allFormats), "classic-gzip1", "classic-gzip2", "classic-gzip3",
		"classic-gzip4", "classic-gzip5", "classic-gzip6", "classic-gzip7", "classic-gzip8", "classic-gzip9")); err != nil {
		return cfg, fmt.Errorf("-every-night: %w", err)
	}
	if *seed != "" {
		if cfg.seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
			return cfg, fmt.Errorf("-seed: %w", err)
		}
		cfg.seedSet = true
	}
	if *size != "" {
		if cfg.uploads, err = parseSize(*size); err != nil {
			return cfg, fmt.Errorf("-upload-bytes: %w", err)
		}
	}
	return cfg, nil
}

// parseList splits a comma-separated list and checks each item is allowed.
func parseList(s string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(allowed, f) {
			return nil, fmt.Errorf("unknown name %q (want one of %s)", f, strings.Join(allowed, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// parseLevels parses a comma-separated list of gzip levels 1..9.
func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 9 {
			return nil, fmt.Errorf("level %q is not 1..9", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no level given")
	}
	return out, nil
}

// parseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size between 0 and 1T", s)
	}
	return n * mult, nil
}

// stamp is the canonical form of the flags that decide the outputs.
func (c config) stamp(opts fixture.Options) string {
	levels := make([]string, len(c.levels))
	for i, l := range c.levels {
		levels[i] = strconv.Itoa(l)
	}
	return fmt.Sprintf("preset=%s nights=%d formats=%s outer-level=%s every-night=%s seed=%d upload-bytes=%d site=%s",
		c.preset, opts.Nights, strings.Join(c.formats, ","), strings.Join(levels, ","), strings.Join(c.everyNight, ","),
		opts.Seed, opts.UploadBytes, opts.Site)
}

// output is one kind of file to write.
type output struct {
	kind  string // folder name
	name  func(s *fixture.Series) string
	write func(ctx context.Context, s *fixture.Series, dir string) (string, error)
}

// outputs expands the formats into kinds.
func (c config) outputs() []output {
	var out []output
	for _, f := range c.formats {
		switch f {
		case "classic":
			for _, l := range c.levels {
				out = append(out, output{"classic-gzip" + strconv.Itoa(l), (*fixture.Series).ClassicName, func(ctx context.Context, s *fixture.Series, dir string) (string, error) {
					return s.WriteClassic(ctx, dir, fixture.ClassicOptions{OuterLevel: l})
				}})
			}
		case "dumponly":
			out = append(out, output{f, (*fixture.Series).DumpOnlyName, func(ctx context.Context, s *fixture.Series, dir string) (string, error) {
				return s.WriteDumpOnly(ctx, dir, fixture.DumpOnlyOptions{})
			}})
		case "2026":
			out = append(out, output{f, func(s *fixture.Series) string { return s.Name2026("") }, func(ctx context.Context, s *fixture.Series, dir string) (string, error) {
				return s.Write2026(ctx, dir, fixture.V2026Options{})
			}})
		case "v15":
			out = append(out, output{f, (*fixture.Series).V15Name, func(ctx context.Context, s *fixture.Series, dir string) (string, error) {
				return s.WriteV15(ctx, dir, fixture.V15Options{})
			}})
		case "zulip":
			out = append(out, output{f, (*fixture.Series).ZulipName, func(ctx context.Context, s *fixture.Series, dir string) (string, error) {
				return s.WriteZulip(ctx, dir, fixture.ZulipOptions{})
			}})
		}
	}
	return out
}

// everyNight reports whether kind is written every night.
func (c config) isEveryNight(kind string) bool {
	for _, e := range c.everyNight {
		if e == kind || e == "classic" && strings.HasPrefix(kind, "classic-gzip") {
			return true
		}
	}
	return false
}

// run builds the series and writes the outputs.
func run(ctx context.Context, c config, stdout io.Writer) error {
	opts, err := c.options()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return fmt.Errorf("create output folder: %w", err)
	}
	stampPath := filepath.Join(c.out, stampName)
	want := c.stamp(opts)
	done, err := c.checkStamp(stampPath, want, stdout)
	if err != nil || done {
		return err
	}
	if err := os.WriteFile(stampPath, []byte(want+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stampPath, err)
	}

	work, err := os.MkdirTemp("", "mkfixtures-")
	if err != nil {
		return fmt.Errorf("create working folder: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }() // a temporary folder: at worst it is left behind
	opts.Dir = work

	s, err := fixture.NewSeries(ctx, opts)
	if err != nil {
		return err
	}
	// After an error, that error is the one to report; on success Close
	// runs below (and a second Close does nothing).
	defer func() { _ = s.Close() }()
	if versions, err := s.ToolVersions(ctx); err == nil {
		if _, err := fmt.Fprintf(stdout, "tools: %s\n", strings.Join(versions, "; ")); err != nil {
			return err
		}
	}
	if err := c.writeNights(ctx, s, opts.Nights, stdout); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(stampPath, []byte(want+" complete\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stampPath, err)
	}
	return nil
}

// options returns the series options the flags ask for: the preset's,
// changed by -nights, -seed, -upload-bytes, -site, -pg-bin and -v.
func (c config) options() (fixture.Options, error) {
	opts, err := fixture.Preset(c.preset)
	if err != nil {
		return opts, err
	}
	if c.nights > 0 {
		opts.Nights = c.nights
	}
	if opts.Nights < 1 {
		opts.Nights = 1
	}
	if c.seedSet {
		opts.Seed = c.seed
	}
	if c.uploads > 0 {
		opts.UploadBytes = c.uploads
		opts.Uploads = 0 // one per 100 KB
	}
	if c.site != "" {
		opts.Site = c.site
	} else {
		opts.Site = fixture.DefaultSite
	}
	opts.PG.BinDir = c.pgBin
	if c.verbose {
		opts.Log = os.Stderr
	}
	return opts, nil
}

// checkStamp compares the output folder's stamp with want: done when a run
// with the same flags completed, an error when other flags made the folder.
func (c config) checkStamp(stampPath, want string, stdout io.Writer) (done bool, err error) {
	old, err := os.ReadFile(stampPath)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", stampPath, err)
	}
	got, complete := strings.CutSuffix(strings.TrimSpace(string(old)), " complete")
	if got != want {
		return false, fmt.Errorf("%s holds fixtures made with other flags (%s); use another -out or remove it", c.out, got)
	}
	if !complete {
		return false, nil
	}
	_, err = fmt.Fprintf(stdout, "%s is up to date (%s)\n", c.out, want)
	return true, err
}

// writeNights moves the series through its nights, writing each night's
// outputs (all of them on the last night).
func (c config) writeNights(ctx context.Context, s *fixture.Series, nights int, stdout io.Writer) error {
	outs := c.outputs()
	for night := 1; night <= nights; night++ {
		if night > 1 {
			if err := s.Night(ctx); err != nil {
				return err
			}
		}
		last := night == nights
		for _, o := range outs {
			if !last && !c.isEveryNight(o.kind) {
				continue
			}
			if err := c.writeOutput(ctx, s, o, night, stdout); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeOutput writes one night's file of one kind, unless a resumed run
// wrote it already.
func (c config) writeOutput(ctx context.Context, s *fixture.Series, o output, night int, stdout io.Writer) error {
	dir := filepath.Join(c.out, o.kind)
	if _, err := os.Stat(filepath.Join(dir, o.name(s))); err == nil {
		_, err := fmt.Fprintf(stdout, "night %d: %s exists, skipped\n", night, filepath.Join(dir, o.name(s)))
		return err
	}
	path, err := o.write(ctx, s, dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "night %d: wrote %s (%d bytes)\n", night, path, fi.Size())
	return err
}
