package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/larder/larder/internal/units"

	"github.com/larder/larder"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func ingestCommand() *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "store backup files (or every file in folders) as snapshots (write or master key)",
		ArgsUsage: "PATH...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be stored, store nothing"},
			&cli.BoolFlag{Name: "force", Usage: "ingest files even when their bytes are stored already"},
			&cli.StringFlag{Name: "host", Usage: "name of this machine, recorded in snapshots (default: the hostname)"},
			&cli.StringFlag{Name: "site", Usage: "the site (forum) the backups belong to (default: the Discourse multisite folder, the Zulip realm, or the name's title)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "record this tag in the snapshots (repeat for more; forget --keep-tag keeps them)"},
		},
		Action: runIngest,
	}
}

// ingestEvent is a file's line of --json output (docs/JSON.md).
type ingestEvent struct {
	MessageType string                    `json:"message_type"` // "ingest"
	Action      string                    `json:"action"`       // stored, skipped, would_store
	File        string                    `json:"file"`
	Snapshot    string                    `json:"snapshot,omitempty"`
	Site        string                    `json:"site,omitempty"`
	BackupTime  *time.Time                `json:"backup_time,omitempty"`
	Size        int64                     `json:"size"`
	SHA256      string                    `json:"sha256"`
	Exact       *bool                     `json:"exact,omitempty"` // absent for a skipped file
	Layers      []recompress.LayerSummary `json:"layers,omitempty"`
	NewBytes    uint64                    `json:"new_bytes"`
	Canonical   uint64                    `json:"canonical_bytes"`
	DedupRatio  float64                   `json:"dedup_ratio,omitempty"` // size / new_bytes; absent when nothing new
	Damaged     bool                      `json:"damaged"`
	Warnings    []string                  `json:"warnings,omitempty"`
}

// errorEvent is a --json line for a failure that does not end the
// command (a file that could not be ingested).
type errorEvent struct {
	MessageType string `json:"message_type"` // "error"
	Action      string `json:"action"`       // the command
	File        string `json:"file,omitempty"`
	Message     string `json:"message"`
}

// ingestSummary is the last --json line of an ingest.
type ingestSummary struct {
	MessageType string `json:"message_type"` // "summary"
	Action      string `json:"action"`       // "ingest"
	Files       int    `json:"files"`
	Stored      int    `json:"stored"` // with --dry-run: would be stored
	Skipped     int    `json:"skipped"`
	Failed      int    `json:"failed"`
	Damaged     int    `json:"damaged"`
	NewBytes    uint64 `json:"new_bytes"`
	DryRun      bool   `json:"dry_run"`
}

func runIngest(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("ingest needs at least one PATH")
	}
	if site := c.String("site"); site != "" {
		if err := repo.ValidSite(site); err != nil {
			return usagef("--site %w", err)
		}
	}
	tags := c.StringSlice("tag")
	if len(tags) > repo.MaxTags {
		return usagef("--tag: %d tags, at most %d", len(tags), repo.MaxTags)
	}
	for _, t := range tags {
		if err := repo.ValidSite(t); err != nil {
			return usagef("--tag %w", err)
		}
	}
	files, err := expand(c.Args().Slice())
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return &statusError{exitNotFound, fmt.Sprintf("no backup file found in %s", strings.Join(c.Args().Slice(), ", "))}
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	host := c.String("host")
	if host == "" {
		host, _ = os.Hostname() // empty when unknown: snapshots go without
	}
	var t ingestTally
	m := newMeter(c)
	for i, f := range files {
		m.fileStart(i+1, len(files), filepath.Base(f))
		res, err := ingestFile(c, r, f, host, m)
		if err != nil {
			if errors.Is(err, c.Context.Err()) && c.Context.Err() != nil {
				return err
			}
			t.failed++
			if t.firstErr == nil {
				t.firstErr = err
			}
			if err := reportFailure(c, f, err, len(files)); err != nil {
				return err
			}
			continue
		}
		ev := newIngestEvent(f, res, c.Bool("dry-run"))
		switch ev.Action {
		case "stored", "would_store":
			t.stored++
			t.newBytes += ev.NewBytes
		case "skipped":
			t.skipped++
		}
		if ev.Damaged {
			t.damaged++
		}
		if c.Bool("json") {
			if err := emit(c, ev); err != nil {
				return err
			}
			continue
		}
		printIngest(c, ev)
	}
	return t.result(c, files)
}

// ingestTally counts the outcomes of an ingest's files.
type ingestTally struct {
	failed, damaged, stored, skipped int
	newBytes                         uint64
	firstErr                         error
}

// result is the command's error for the tally: the failure (the first
// one's cause; exit 3 when other files went in), damage stored, or
// nothing (a night with nothing new is a success, and says so).
func (t ingestTally) result(c *cli.Context, files []string) error {
	if c.Bool("json") {
		if err := emit(c, ingestSummary{MessageType: "summary", Action: "ingest", Files: len(files), Stored: t.stored, Skipped: t.skipped,
			Failed: t.failed, Damaged: t.damaged, NewBytes: t.newBytes, DryRun: c.Bool("dry-run")}); err != nil {
			return err
		}
	}
	switch {
	case t.failed > 0 && t.failed == len(files):
		if len(files) == 1 {
			return fmt.Errorf("%s: %w", files[0], t.firstErr)
		}
		return fmt.Errorf("all %d files failed (first: %s)", t.failed, oneLine(t.firstErr.Error()))
	case t.failed > 0:
		return &statusError{exitPartial, fmt.Sprintf("%s of %d failed (first: %s)", plural(t.failed, "file", "files"), len(files), oneLine(t.firstErr.Error()))}
	case t.damaged > 0:
		return &statusError{exitDamaged, fmt.Sprintf("%s stored exactly, flagged", plural(t.damaged, "damaged file", "damaged files"))}
	case t.stored == 0:
		out(c, "nothing new: %s stored already\n", plural(t.skipped, "file", "files"))
	}
	return nil
}

// ingestFile ingests one file, showing its progress on m.
func ingestFile(c *cli.Context, r *repo.Repo, f, host string, m *meter) (*larder.IngestResult, error) {
	opts := larder.IngestOptions{DryRun: c.Bool("dry-run"), Force: c.Bool("force"), Host: host,
		Site: c.String("site"), Tags: c.StringSlice("tag")}
	if m != nil {
		opts.Progress = m.update
	}
	res, err := larder.Ingest(c.Context, r, f, opts)
	m.done()
	return res, err
}

// reportFailure reports a file that failed: a "failed" event with --json,
// else a line on stderr when there are several files (with one, run prints
// the returned error: once).
func reportFailure(c *cli.Context, f string, err error, files int) error {
	if c.Bool("json") {
		return emit(c, errorEvent{MessageType: "error", Action: "ingest", File: f, Message: err.Error()})
	}
	if files > 1 {
		problem(c, "%s: %s", f, oneLine(err.Error()))
	}
	return nil
}

// newIngestEvent describes the result of ingesting file f.
func newIngestEvent(f string, res *larder.IngestResult, dryRun bool) ingestEvent {
	ev := ingestEvent{MessageType: "ingest", File: f, Size: res.Size, SHA256: fmt.Sprintf("%x", res.SHA256), Site: res.Site}
	if !res.Made.IsZero() {
		ev.BackupTime = &res.Made
	}
	switch {
	case res.Existing != "":
		ev.Action = "skipped"
		ev.Snapshot = res.Existing
	case dryRun:
		ev.Action = "would_store"
	default:
		ev.Action = "stored"
		ev.Snapshot = res.Snapshot.String()
	}
	if res.Summary != nil {
		exact := res.Summary.Exact
		ev.Exact, ev.Layers = &exact, res.Summary.Layers
		for _, s := range res.Summary.Streams {
			ev.Canonical += s.Bytes
		}
		ev.NewBytes = res.Stats.NewStored
		if res.Size > 0 && res.Stats.NewStored > 0 {
			ev.DedupRatio = float64(res.Size) / float64(res.Stats.NewStored)
		}
		for _, w := range res.Warnings {
			ev.Warnings = append(ev.Warnings, w.Error())
		}
		ev.Damaged = res.Damaged()
	}
	return ev
}

func printIngest(c *cli.Context, ev ingestEvent) {
	name := filepath.Base(ev.File)
	switch ev.Action {
	case "skipped":
		out(c, "skipped %s: stored already in snapshot %s\n", name, short(ev.Snapshot))
		return
	case "would_store":
		out(c, "would store %s: %s, %s new (%s)\n", name, human(uint64(ev.Size)), human(ev.NewBytes), ratioText(uint64(ev.Size), ev.NewBytes))
	default:
		made := "?"
		if ev.BackupTime != nil {
			made = ev.BackupTime.Local().Format("2006-01-02 15:04")
		}
		out(c, "stored %s as snapshot %s (site %s, made %s): %s, %s new (%s)\n", name, short(ev.Snapshot), ev.Site,
			made, human(uint64(ev.Size)), human(ev.NewBytes), ratioText(uint64(ev.Size), ev.NewBytes))
	}
	for _, l := range ev.Layers {
		engine := l.Engine
		if engine == "" {
			engine = "no engine"
		}
		out(c, "  %s: %s, %s\n", l.Where, l.Mode, engine)
	}
	for _, w := range ev.Warnings {
		warn(c, "%s", w)
	}
}

// foundFile is a file found in a folder, with when its backup was made.
type foundFile struct {
	path string
	made time.Time
}

// expand turns folders into the files they hold (hidden files and partial
// downloads are left out), oldest backup first: each site's snapshots are
// then chained in the order their backups were made, which retention
// checks (Repo.Plan: a backup made before the one chained before it is
// kept as suspicious). Ties keep the order given, then path order.
func expand(paths []string) ([]string, error) {
	var found []foundFile
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			found = append(found, foundFile{path: p}) // reported by Ingest, one line per file
			continue
		}
		if !fi.IsDir() {
			found = append(found, foundFile{p, larder.BackupTime(p, fi)})
			continue
		}
		var in []foundFile
		err = filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && q != p {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".part") {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				in = append(in, foundFile{q, larder.BackupTime(q, fi)})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(in, func(i, j int) bool { return in[i].path < in[j].path })
		found = append(found, in...)
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].made.Before(found[j].made) })
	files := make([]string, len(found))
	for i, f := range found {
		files[i] = f.path
	}
	return files, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func human(n uint64) string { return units.Bytes(n) }
