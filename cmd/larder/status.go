package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/larder/larder/internal/units"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "each site's newest snapshot and last drill; with --max-age, fail when one is stale (master or audit key)",
		Flags: []cli.Flag{
			siteFlag("show only this site"),
			&cli.DurationFlag{Name: "max-age", Usage: "exit 6 when a site's newest backup is older than this (e.g. 26h) or its last drill failed"},
		},
		Action: runStatus,
	}
}

// siteStatusJSON is one site's line of status --json.
type siteStatusJSON struct {
	MessageType string         `json:"message_type"` // "site_status"
	Site        string         `json:"site"`
	Snapshots   int            `json:"snapshots"`
	Rejected    int            `json:"rejected,omitempty"`
	Newest      *newestJSON    `json:"newest,omitempty"`
	LastDrill   *lastDrillJSON `json:"last_drill,omitempty"`
	Stale       bool           `json:"stale"`
	Problems    []string       `json:"problems,omitempty"`
}

type newestJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	BackupTime time.Time `json:"backup_time"`
	AgeSeconds int64     `json:"age_seconds"`
	Exact      bool      `json:"exact"`
	Damaged    bool      `json:"damaged"`
}

type lastDrillJSON struct {
	Snapshot   string    `json:"snapshot"`
	Time       time.Time `json:"time"`
	AgeSeconds int64     `json:"age_seconds"`
	OK         bool      `json:"ok"`
	Postgres   bool      `json:"postgres"`
	Error      string    `json:"error,omitempty"`
}

func runStatus(c *cli.Context) error {
	if c.IsSet("max-age") && c.Duration("max-age") <= 0 {
		return usagef("--max-age %s: give a positive duration, e.g. 26h", c.Duration("max-age"))
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	if role := r.Role(); role != crypto.RoleMaster && role != crypto.RoleAudit {
		return fmt.Errorf("%w: status reads sites from manifests: it needs the master or audit key", repo.ErrPermission)
	}
	sites, problems, err := larder.Status(c.Context, r)
	if err != nil {
		return err
	}
	for _, p := range problems {
		warn(c, "%s: %s", p.Object, p.What)
	}
	now := time.Now()
	var rows []siteStatusJSON
	for _, st := range sites {
		if site := c.String("site"); site != "" && st.Site != site {
			continue
		}
		rows = append(rows, siteRow(c, st, now))
	}
	if c.String("site") != "" && len(rows) == 0 {
		return &statusError{exitNotFound, fmt.Sprintf("no snapshot of site %q", c.String("site"))}
	}
	bad := 0
	for _, j := range rows {
		if len(j.Problems) > 0 {
			bad++
		}
	}
	if c.Bool("json") {
		for _, j := range rows {
			if err := emit(c, j); err != nil {
				return err
			}
		}
		if err := emit(c, map[string]any{"message_type": "summary", "action": "status", "sites": len(rows), "problems": bad}); err != nil {
			return err
		}
	} else {
		printStatus(c, rows, now)
	}
	if bad > 0 {
		return &statusError{exitStale, fmt.Sprintf("%s of %d need attention", plural(bad, "site", "sites"), len(rows))}
	}
	return nil
}

// siteRow describes a site, with its problems: stale (--max-age) or its
// last drill failed.
func siteRow(c *cli.Context, st *larder.SiteStatus, now time.Time) siteStatusJSON {
	j := siteStatusJSON{MessageType: "site_status", Site: st.Site, Snapshots: st.Snapshots, Rejected: st.Rejected}
	if j.Site == "" {
		j.Site = "(none)"
	}
	if s := st.Newest; s != nil {
		j.Newest = &newestJSON{ID: s.ID.String(), BackupTime: s.Made(), AgeSeconds: int64(st.Age(now) / time.Second),
			Exact: st.Exact, Damaged: st.Damaged}
		if s.Manifest != nil {
			j.Newest.Name = s.Manifest.Name
		}
	}
	if d := st.LastDrill; d != nil {
		j.LastDrill = &lastDrillJSON{Snapshot: d.Snapshot.String(), Time: d.Time, AgeSeconds: int64(now.Sub(d.Time) / time.Second),
			OK: d.OK, Postgres: d.Postgres != nil, Error: d.Error}
	}
	if maxAge := c.Duration("max-age"); maxAge > 0 && st.Stale(now, maxAge) {
		j.Stale = true
		if st.Newest == nil {
			j.Problems = append(j.Problems, "no usable snapshot")
		} else {
			j.Problems = append(j.Problems, fmt.Sprintf("stale: newest backup %s old (limit %s)", ago(st.Age(now)), ago(maxAge)))
		}
	}
	if st.DrillFailed() {
		j.Problems = append(j.Problems, "last drill failed")
	}
	return j
}

func printStatus(c *cli.Context, rows []siteStatusJSON, now time.Time) {
	table := [][]string{{"SITE", "SNAPSHOTS", "NEWEST", "AGE", "LAYERS", "LAST DRILL", "RESULT", "PROBLEMS"}}
	for _, j := range rows {
		row := []string{j.Site, fmt.Sprint(j.Snapshots), "-", "-", "-", "never", "-"}
		if n := j.Newest; n != nil {
			layers := "verbatim"
			switch {
			case n.Damaged:
				layers = "DAMAGED"
			case n.Exact:
				layers = "exact"
			}
			row[2], row[3], row[4] = n.BackupTime.Local().Format("2006-01-02 15:04"), ago(time.Duration(n.AgeSeconds)*time.Second), layers
		}
		if d := j.LastDrill; d != nil {
			row[5] = d.Time.Local().Format("2006-01-02 15:04") + " (" + ago(time.Duration(d.AgeSeconds)*time.Second) + " ago)"
			row[6] = "ok"
			if d.Postgres {
				row[6] = "ok, loaded into PostgreSQL"
			}
			if !d.OK {
				row[6] = "FAILED"
			}
		}
		row = append(row, strings.Join(j.Problems, "; "))
		table = append(table, row)
	}
	printTable(c, table, map[int]bool{1: true, 3: true})
}

func ago(d time.Duration) string { return units.Age(d) }
