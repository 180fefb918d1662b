package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func drillCommand() *cli.Command {
	return &cli.Command{
		Name:      "drill",
		Usage:     "prove snapshots restore (and, with --postgres, that their dumps load); records the result (master key)",
		ArgsUsage: "[SNAPSHOT]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "latest", Usage: "drill the newest snapshot of each site"},
			siteFlag("drill only this site's snapshots"),
			&cli.IntFlag{Name: "random", Usage: "drill N snapshots chosen at random"},
			&cli.BoolFlag{Name: "all", Usage: "drill every snapshot"},
			&cli.BoolFlag{Name: "postgres", Usage: "load the dump into a scratch PostgreSQL and compare row counts"},
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of the PostgreSQL programs (default: searched)"},
			&cli.StringFlag{Name: "tmp", Usage: "folder for the restored file and the scratch cluster"},
			&cli.BoolFlag{Name: "no-record", Usage: "do not store the result in the repository (for a read-only copy)"},
			&cli.BoolFlag{Name: "allow-rejected", Usage: "drill a snapshot the repository rejects (a revoked key's)"},
		},
		Action: runDrill,
	}
}

func runDrill(c *cli.Context) error {
	if err := checkDrillArgs(c); err != nil {
		return err
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	if r.Role() != crypto.RoleMaster {
		return fmt.Errorf("%w: drills need the master key", repo.ErrPermission)
	}
	unlock, err := r.ReadLock(c.Context)
	if err != nil {
		return err
	}
	defer unlock()
	snaps, err := drillSnapshots(c, r)
	if err != nil {
		return err
	}
	host, _ := os.Hostname() // empty when unknown: the record goes without
	failed := 0
	var recordErr error
	for _, s := range snaps {
		rec, err := larder.Drill(c.Context, r, s, larder.DrillOptions{Postgres: c.Bool("postgres"),
			PGBin: c.String("pg-bin"), TempDir: c.String("tmp"), Host: host, NoRecord: c.Bool("no-record")})
		if rec == nil {
			return err
		}
		if err != nil && recordErr == nil {
			// The drill ran but its record could not be stored: say how
			// it went, then fail.
			recordErr = fmt.Errorf("drill %s: %w (--no-record drills without storing a record)", s.ID.Short(), err)
		}
		if !rec.OK {
			failed++
		}
		if c.Bool("json") {
			if err := emit(c, rec); err != nil {
				return err
			}
			continue
		}
		printDrill(c, s, rec)
	}
	if failed > 0 {
		return &statusError{exitVerify, fmt.Sprintf("%d of %d drills failed", failed, len(snaps))}
	}
	return recordErr
}

// checkDrillArgs accepts exactly one way of choosing the snapshots:
// SNAPSHOT, --latest, --random N or --all.
func checkDrillArgs(c *cli.Context) error {
	chosen := 0
	for _, f := range []bool{c.NArg() == 1, c.Bool("latest"), c.Int("random") > 0, c.Bool("all")} {
		if f {
			chosen++
		}
	}
	if chosen != 1 || c.NArg() > 1 {
		return usagef("drill needs exactly one of SNAPSHOT, --latest, --random N, --all")
	}
	return nil
}

// drillSnapshots returns the snapshots the arguments choose: the one
// named, or the newest, N random or all of the usable ones.
func drillSnapshots(c *cli.Context, r *repo.Repo) ([]*repo.Snapshot, error) {
	if c.NArg() == 1 {
		s, err := findSnapshot(c, r, c.Args().First())
		if err != nil {
			return nil, err
		}
		s.AllowRejected = c.Bool("allow-rejected")
		if err := s.Usable(); err != nil {
			return nil, err
		}
		return []*repo.Snapshot{s}, nil
	}
	listed, err := r.Snapshots(c.Context, true)
	if err != nil {
		return nil, err
	}
	// Rejected snapshots (a revoked key's) are not drilled unless asked.
	var all []*repo.Snapshot
	for _, s := range listed {
		s.AllowRejected = c.Bool("allow-rejected")
		if site := c.String("site"); site != "" && s.SiteName() != site {
			continue
		}
		if s.Usable() == nil {
			all = append(all, s)
		} else if !c.Bool("json") {
			warn(c, "%v", s.Usable())
		}
	}
	if len(all) == 0 {
		if site := c.String("site"); site != "" {
			return nil, &statusError{exitNotFound, fmt.Sprintf("no snapshot of site %q to drill", site)}
		}
		return nil, &statusError{exitNotFound, "no snapshots to drill"}
	}
	switch {
	case c.Bool("latest"):
		return newestPerSite(all), nil
	case c.Bool("all"):
		return all, nil
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(c.Int("random"), len(all))], nil
}

// printDrill prints one drill's result line, and its error and row count
// mismatches to stderr.
func printDrill(c *cli.Context, s *repo.Snapshot, rec *repo.DrillRecord) {
	name := ""
	if s.Manifest != nil {
		name = s.Manifest.Name
	}
	status := "ok"
	if !rec.OK {
		status = "FAILED"
	}
	line := fmt.Sprintf("drill %s %s: %s, %s restored", s.ID.Short(), name, status, human(rec.Bytes))
	if rec.SHA256OK {
		line += ", sha256 verified"
	}
	if pg := rec.Postgres; pg != nil {
		line += fmt.Sprintf(", %s: %d tables, %d rows", pgVersion(pg.Version), pg.Tables, pg.Rows)
		if len(pg.Mismatches) == 0 {
			line += " match"
		}
	}
	out(c, "%s\n", line)
	if rec.Error != "" {
		problem(c, "drill %s: %s", s.ID.Short(), oneLine(rec.Error))
	}
	if rec.Postgres != nil {
		for _, m := range rec.Postgres.Mismatches {
			problem(c, "drill %s: %s", s.ID.Short(), m)
		}
	}
}

// pgVersion shortens "postgres (PostgreSQL) 15.18 (Debian ...)".
func pgVersion(v string) string {
	if _, rest, ok := strings.Cut(v, "(PostgreSQL) "); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			return "PostgreSQL " + f[0]
		}
	}
	return v
}

// newestPerSite returns each site's newest snapshot (by backup time), in
// the order of sites' first appearance.
func newestPerSite(snaps []*repo.Snapshot) []*repo.Snapshot {
	newest := map[string]*repo.Snapshot{}
	var order []string
	for _, s := range snaps {
		site := s.SiteName()
		b, ok := newest[site]
		if !ok {
			order = append(order, site)
		}
		if !ok || larder.Newer(s, b) {
			newest[site] = s
		}
	}
	out := make([]*repo.Snapshot, len(order))
	for i, site := range order {
		out[i] = newest[site]
	}
	return out
}
