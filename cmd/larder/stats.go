package main

import (
	"fmt"

	"github.com/larder/larder/repo/backend"
	"github.com/urfave/cli/v2"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:   "stats",
		Usage:  "original bytes against stored bytes, per snapshot and in total",
		Action: runStats,
	}
}

func runStats(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	var stored int64
	for _, t := range []backend.Type{backend.TypeData, backend.TypeIndex, backend.TypeSnapshot, backend.TypeDrill, backend.TypeForget, backend.TypePrune, backend.TypeKey} {
		if err := r.Backend().List(c.Context, t, func(fi backend.FileInfo) error { stored += fi.Size; return nil }); err != nil {
			return fmt.Errorf("listing the repository's %s objects: %w", t, err)
		}
	}
	snaps, err := r.Snapshots(c.Context, true)
	if err != nil {
		return err
	}
	var original uint64
	for _, s := range snaps {
		if m := s.Manifest; m != nil {
			original += m.Size
			if c.Bool("json") {
				if err := emit(c, map[string]any{"message_type": "snapshot_stats", "snapshot": s.ID.String(), "site": s.SiteName(), "name": m.Name,
					"size": m.Size, "new_bytes": m.Stats.NewStored, "chunks": m.Stats.Chunks, "new_chunks": m.Stats.NewChunks}); err != nil {
					return err
				}
			} else {
				out(c, "%s  %-48s  %9s  %9s new\n", s.ID.Short(), m.Name, human(m.Size), human(m.Stats.NewStored))
			}
		}
	}
	ratio := 0.0
	if stored > 0 {
		ratio = float64(original) / float64(stored)
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "summary", "action": "stats", "snapshots": len(snaps), "original_bytes": original,
			"stored_bytes": stored, "ratio": ratio})
	}
	if original > 0 {
		out(c, "%s: %s of originals stored in %s (%s)\n", plural(len(snaps), "snapshot", "snapshots"), human(original), human(uint64(stored)), ratioText(original, uint64(stored)))
	} else {
		out(c, "%s; the repository holds %s\n", plural(len(snaps), "snapshot", "snapshots"), human(uint64(stored)))
	}
	return nil
}
