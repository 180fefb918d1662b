package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:   "snapshots",
		Usage:  "list snapshots (a write key sees only times and writers)",
		Action: runSnapshots,
	}
}

type snapshotJSON struct {
	ID       string              `json:"id"`
	Time     time.Time           `json:"time"`
	Writer   string              `json:"writer"`
	Seq      uint64              `json:"seq"`
	Name     string              `json:"name,omitempty"`
	Size     uint64              `json:"size,omitempty"`
	SHA256   string              `json:"sha256,omitempty"`
	Exact    *bool               `json:"exact,omitempty"`
	NewBytes uint64              `json:"new_bytes,omitempty"`
	Damaged  []string            `json:"damaged,omitempty"`
	Summary  *recompress.Summary `json:"summary,omitempty"`
	// Rejected says why the repository rejects it (a revoked key's).
	Rejected string `json:"rejected,omitempty"`
}

func runSnapshots(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	snaps, err := r.Snapshots(c.Context, true)
	if err != nil {
		return err
	}
	if !c.Bool("json") {
		out(c, "%-8s  %-16s  %-48s  %9s  %-8s  %9s  %s\n", "ID", "TIME", "NAME", "SIZE", "LAYERS", "NEW", "CONTENT")
	}
	for _, s := range snaps {
		j := snapshotJSON{ID: s.ID.String(), Time: s.Envelope.Claimed, Writer: s.Envelope.Writer.String(), Seq: s.Envelope.Seq, Rejected: s.Rejected}
		if m := s.Manifest; m != nil {
			j.Name, j.Size, j.SHA256, j.NewBytes, j.Damaged = m.Name, m.Size, m.SHA256, m.Stats.NewStored, m.Damaged
			var sum recompress.Summary
			if json.Unmarshal(m.Summary, &sum) == nil {
				j.Summary = &sum
				exact := sum.Exact
				j.Exact = &exact
			}
		}
		if c.Bool("json") {
			if err := emit(c, j); err != nil {
				return err
			}
			continue
		}
		printSnapshot(c, s, j)
		if s.Rejected != "" {
			out(c, "          REJECTED: %s\n", s.Rejected)
		}
	}
	return nil
}

func printSnapshot(c *cli.Context, s *repo.Snapshot, j snapshotJSON) {
	when := j.Time.Local().Format("2006-01-02 15:04")
	if s.Manifest == nil {
		out(c, "%-8s  %-16s  (sealed: written by key %s, #%d)\n", short(j.ID), when, short(j.Writer), j.Seq)
		return
	}
	layers := "verbatim"
	if j.Exact != nil && *j.Exact {
		layers = "exact"
	}
	if len(j.Damaged) > 0 {
		layers = "DAMAGED"
	}
	content := ""
	if sum := j.Summary; sum != nil {
		var rows uint64
		for _, t := range sum.Tables {
			rows += t.Rows
		}
		var parts []string
		if len(sum.Tables) > 0 {
			parts = append(parts, fmt.Sprintf("%d tables, %d rows", len(sum.Tables), rows))
		}
		if sum.Tar != nil {
			parts = append(parts, fmt.Sprintf("%d files", sum.Tar.Members))
		}
		content = strings.Join(parts, "; ")
	}
	name := j.Name
	if len(name) > 48 {
		name = name[:45] + "..."
	}
	out(c, "%-8s  %-16s  %-48s  %9s  %-8s  %9s  %s\n", short(j.ID), when, name, human(j.Size), layers, human(j.NewBytes), content)
}
