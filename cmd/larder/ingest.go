package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
		},
		Action: runIngest,
	}
}

// ingestEvent is one line of --json output.
type ingestEvent struct {
	Event      string                    `json:"event"` // ingested, skipped, would-ingest, failed
	File       string                    `json:"file"`
	Snapshot   string                    `json:"snapshot,omitempty"`
	Size       int64                     `json:"size"`
	SHA256     string                    `json:"sha256,omitempty"`
	Exact      bool                      `json:"exact"`
	Layers     []recompress.LayerSummary `json:"layers,omitempty"`
	NewBytes   uint64                    `json:"new_bytes"`
	Canonical  uint64                    `json:"canonical_bytes"`
	DedupRatio float64                   `json:"dedup_ratio"`
	Damaged    bool                      `json:"damaged,omitempty"`
	Warnings   []string                  `json:"warnings,omitempty"`
	Error      string                    `json:"error,omitempty"`
}

func runIngest(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("ingest needs at least one PATH")
	}
	files, err := expand(c.Args().Slice())
	if err != nil {
		return err
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
	for _, f := range files {
		res, err := ingestFile(c, r, f, host)
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
		if ev.Event == "ingested" {
			t.stored++
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
	return t.result(files, c.Bool("dry-run"))
}

// ingestTally counts the outcomes of an ingest's files.
type ingestTally struct {
	failed, damaged, stored int
	firstErr                error
}

// result is the command's error for the tally: the failure (the first
// one's cause), damage stored, or nothing to do.
func (t ingestTally) result(files []string, dryRun bool) error {
	switch {
	case t.failed > 0:
		if t.failed == 1 && len(files) == 1 {
			return fmt.Errorf("%s: %w", files[0], t.firstErr)
		}
		return fmt.Errorf("%d of %d files failed (first: %s)", t.failed, len(files), oneLine(t.firstErr.Error()))
	case t.damaged > 0:
		return &statusError{exitDamaged, fmt.Sprintf("%s stored exactly, flagged", plural(t.damaged, "damaged file", "damaged files"))}
	case t.stored == 0 && !dryRun:
		return &statusError{exitNothingToDo, "nothing to do: every file is stored already"}
	}
	return nil
}

// ingestFile ingests one file, showing progress on a terminal stderr.
func ingestFile(c *cli.Context, r *repo.Repo, f, host string) (*larder.IngestResult, error) {
	opts := larder.IngestOptions{DryRun: c.Bool("dry-run"), Force: c.Bool("force"), Host: host}
	progress := isTerminal(c.App.ErrWriter) && !c.Bool("quiet") && !c.Bool("json")
	if progress {
		name := filepath.Base(f)
		opts.Progress = func(phase string, done, total int64) {
			printErr(c, "\r%s: %s %s of %s ", name, phase, human(uint64(done)), human(uint64(total)))
		}
	}
	res, err := larder.Ingest(c.Context, r, f, opts)
	if progress {
		printErr(c, "\r\033[K")
	}
	return res, err
}

// reportFailure reports a file that failed: a "failed" event with --json,
// else a line on stderr when there are several files (with one, run prints
// the returned error: once).
func reportFailure(c *cli.Context, f string, err error, files int) error {
	if c.Bool("json") {
		return emit(c, ingestEvent{Event: "failed", File: f, Error: err.Error()})
	}
	if files > 1 {
		problem(c, "%s: %s", f, oneLine(err.Error()))
	}
	return nil
}

// newIngestEvent describes the result of ingesting file f.
func newIngestEvent(f string, res *larder.IngestResult, dryRun bool) ingestEvent {
	ev := ingestEvent{File: f, Size: res.Size, SHA256: fmt.Sprintf("%x", res.SHA256)}
	switch {
	case res.Existing != "":
		ev.Event = "skipped"
		ev.Snapshot = res.Existing
	case dryRun:
		ev.Event = "would-ingest"
	default:
		ev.Event = "ingested"
		ev.Snapshot = res.Snapshot.String()
	}
	if res.Summary != nil {
		ev.Exact, ev.Layers = res.Summary.Exact, res.Summary.Layers
		for _, s := range res.Summary.Streams {
			ev.Canonical += s.Bytes
		}
		ev.NewBytes = res.Stats.NewStored
		if res.Size > 0 {
			ev.DedupRatio = float64(res.Size) / float64(max(res.Stats.NewStored, 1))
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
	switch ev.Event {
	case "skipped":
		out(c, "skipped %s: stored already in snapshot %s\n", name, short(ev.Snapshot))
		return
	case "would-ingest":
		out(c, "would store %s: %s, %s new (%s)\n", name, human(uint64(ev.Size)), human(ev.NewBytes), ratioText(uint64(ev.Size), ev.NewBytes))
	default:
		out(c, "stored %s as snapshot %s: %s, %s new (%s)\n", name, short(ev.Snapshot), human(uint64(ev.Size)), human(ev.NewBytes), ratioText(uint64(ev.Size), ev.NewBytes))
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

// expand turns folders into the files they hold (sorted; hidden files and
// partial downloads are left out).
func expand(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			files = append(files, p) // reported by Ingest, one line per file
			continue
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
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
				found = append(found, q)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func human(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
