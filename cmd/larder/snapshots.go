package main

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshots",
		Usage:     "list snapshots, or show the ones named in full (a write key sees only times and writers)",
		ArgsUsage: "[SNAPSHOT|latest...]",
		Flags: []cli.Flag{
			siteFlag("list only this site's snapshots"),
		},
		Action: runSnapshots,
	}
}

// snapshotJSON is a snapshot's --json line.
type snapshotJSON struct {
	MessageType string `json:"message_type"` // "snapshot"
	larder.SnapshotInfo
}

func runSnapshots(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	names, err := keyNames(c, r)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		for _, a := range c.Args().Slice() {
			s, err := findSnapshot(c, r, a)
			if err != nil {
				return err
			}
			j := describe(s, names)
			if c.Bool("json") {
				if err := emit(c, j); err != nil {
					return err
				}
				continue
			}
			printSnapshotDetail(c, j)
		}
		return nil
	}
	snaps, err := r.Snapshots(c.Context, true)
	if err != nil {
		return err
	}
	var rows []snapshotJSON
	for _, s := range snaps {
		if site := c.String("site"); site != "" && s.SiteName() != site {
			continue
		}
		rows = append(rows, describe(s, names))
	}
	if c.Bool("json") {
		for _, j := range rows {
			if err := emit(c, j); err != nil {
				return err
			}
		}
		return nil
	}
	printSnapshotTable(c, rows)
	return nil
}

// keyNames maps key IDs to the names the master gave them.
func keyNames(c *cli.Context, r *repo.Repo) (map[crypto.KeyID]string, error) {
	recs, _, err := r.Keys(c.Context)
	if err != nil {
		return nil, err
	}
	names := make(map[crypto.KeyID]string, len(recs))
	for _, k := range recs {
		names[k.ID] = k.Name
	}
	return names, nil
}

// describe is what a listing says of a snapshot.
func describe(s *repo.Snapshot, names map[crypto.KeyID]string) snapshotJSON {
	return snapshotJSON{MessageType: "snapshot", SnapshotInfo: larder.Describe(s, names)}
}

// printable replaces what a terminal would take as control (escape
// sequences, new lines) in a writer's claims with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}

// contentText sums up a snapshot's content: tables and rows, files.
func contentText(sum *recompress.Summary) string {
	if sum == nil {
		return ""
	}
	var rows uint64
	for _, t := range sum.Tables {
		rows += t.Rows
	}
	var parts []string
	if len(sum.Tables) > 0 {
		parts = append(parts, fmt.Sprintf("%s, %s", plural(len(sum.Tables), "table", "tables"), plural(int(rows), "row", "rows")))
	}
	if sum.Tar != nil {
		parts = append(parts, plural(sum.Tar.Members, "file", "files"))
	}
	return strings.Join(parts, "; ")
}

// printSnapshotTable prints one line per snapshot, with columns as wide
// as their widest value: names in full.
func printSnapshotTable(c *cli.Context, rows []snapshotJSON) {
	table := [][]string{{"ID", "MADE", "SITE", "NAME", "SIZE", "LAYERS", "NEW", "HOST", "KEY", "CONTENT"}}
	var notes []string
	for _, j := range rows {
		key := j.KeyName
		if key == "" {
			key = short(j.Writer)
		}
		if j.BackupTime == nil {
			table = append(table, []string{short(j.ID), j.Time.Local().Format("2006-01-02 15:04"), "-",
				fmt.Sprintf("(sealed: #%d of this key)", j.Seq), "", "", "", "", printable(key), ""})
		} else {
			site := j.Site
			if site == "" {
				site = "-"
			}
			table = append(table, []string{short(j.ID), j.BackupTime.Local().Format("2006-01-02 15:04"), site,
				printable(j.Name), human(j.Size), j.Layers(), human(j.NewBytes), printable(j.Host), printable(key), contentText(j.Summary)})
		}
		if j.Rejected != "" {
			notes = append(notes, fmt.Sprintf("%s REJECTED: %s", short(j.ID), j.Rejected))
		}
	}
	printTable(c, table, map[int]bool{4: true, 6: true})
	for _, n := range notes {
		out(c, "%s\n", n)
	}
	out(c, "%s\n", plural(len(rows), "snapshot", "snapshots"))
}

// printTable prints rows in columns (right-aligned where right says),
// the last column unpadded.
func printTable(c *cli.Context, table [][]string, right map[int]bool) {
	width := make([]int, len(table[0]))
	for _, row := range table {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	for _, row := range table {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			switch {
			case i == len(row)-1:
				b.WriteString(cell)
			case right[i]:
				b.WriteString(pad + cell + "  ")
			default:
				b.WriteString(cell + pad + "  ")
			}
		}
		out(c, "%s\n", strings.TrimRight(b.String(), " "))
	}
}

// printSnapshotDetail shows one snapshot in full.
func printSnapshotDetail(c *cli.Context, j snapshotJSON) {
	line := func(k, v string) {
		if v != "" {
			out(c, "%-12s %s\n", k+":", v)
		}
	}
	line("snapshot", j.ID)
	if j.Rejected != "" {
		line("REJECTED", j.Rejected)
	}
	line("name", printable(j.Name))
	line("site", j.Site)
	if j.BackupTime != nil {
		line("made", j.BackupTime.Local().Format(time.RFC3339))
	}
	line("ingested", j.Time.Local().Format(time.RFC3339))
	if j.Stored != nil {
		line("stored", j.Stored.Local().Format(time.RFC3339))
	}
	line("host", printable(j.Host))
	key := j.Writer
	if j.KeyName != "" {
		key = printable(j.KeyName) + " (" + j.Writer + ")"
	}
	line("key", key)
	chain := fmt.Sprintf("#%d", j.Seq)
	if j.Prev != "" {
		chain += ", after " + short(j.Prev)
	}
	line("chain", chain)
	line("tags", strings.Join(j.Tags, ", "))
	if j.BackupTime == nil {
		line("content", "sealed (this key cannot open manifests)")
		return
	}
	line("size", fmt.Sprintf("%s (%d bytes), %s new", human(j.Size), j.Size, human(j.NewBytes)))
	line("sha256", j.SHA256)
	line("layers", j.Layers())
	if sum := j.Summary; sum != nil {
		for _, l := range sum.Layers {
			engine := l.Engine
			if engine == "" {
				engine = "no engine"
			}
			out(c, "  %s: %s, %s, %s\n", printable(l.Where), l.Mode, engine, human(l.Bytes))
		}
		line("content", contentText(sum))
		for _, s := range sum.Streams {
			out(c, "  stream %d: %s, %s\n", s.Index, s.Kind, human(s.Bytes))
		}
	}
	for _, d := range j.Damaged {
		line("damaged", printable(d))
	}
}
