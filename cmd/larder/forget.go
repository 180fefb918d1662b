package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func forgetCommand() *cli.Command {
	return &cli.Command{
		Name:      "forget",
		Usage:     "remove snapshots a retention policy does not keep (per site), or the snapshots named (master key)",
		ArgsUsage: "[SNAPSHOT-ID...]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Aliases: []string{"l"}, Usage: "keep the newest N snapshots of each site (-1: all)"},
			&cli.IntFlag{Name: "keep-hourly", Aliases: []string{"H"}, Usage: "keep the newest snapshot of each of the last N hours (-1: every hour)"},
			&cli.IntFlag{Name: "keep-daily", Aliases: []string{"d"}, Usage: "keep the newest snapshot of each of the last N days (-1: every day)"},
			&cli.IntFlag{Name: "keep-weekly", Aliases: []string{"w"}, Usage: "keep the newest snapshot of each of the last N weeks (-1: every week)"},
			&cli.IntFlag{Name: "keep-monthly", Aliases: []string{"m"}, Usage: "keep the newest snapshot of each of the last N months (-1: every month)"},
			&cli.IntFlag{Name: "keep-yearly", Aliases: []string{"y"}, Usage: "keep the newest snapshot of each of the last N years (-1: every year)"},
			&cli.StringFlag{Name: "keep-within", Usage: "keep snapshots made within this span of the site's newest (e.g. 1y6m, 7d, 36h)"},
			&cli.StringSliceFlag{Name: "keep-tag", Usage: "keep snapshots with this tag (ingest --tag; repeat for more)"},
			siteFlag("forget only this site's snapshots"),
			&cli.BoolFlag{Name: "unsafe-allow-remove-all", Usage: "let the policy remove every snapshot of a site"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be removed"},
			&cli.BoolFlag{Name: "prune", Usage: "prune afterwards"},
			&cli.DurationFlag{Name: "grace", Value: repo.DefaultGrace, Usage: "with --prune: delete packs marked at least this long ago"},
		},
		Action: runForget,
	}
}

// policyOf reads the --keep-* options.
func policyOf(c *cli.Context) (repo.Policy, error) {
	p := repo.Policy{Last: c.Int("keep-last"), Hourly: c.Int("keep-hourly"), Daily: c.Int("keep-daily"), Weekly: c.Int("keep-weekly"),
		Monthly: c.Int("keep-monthly"), Yearly: c.Int("keep-yearly"), Tags: c.StringSlice("keep-tag"), Site: c.String("site"),
		AllowRemoveAll: c.Bool("unsafe-allow-remove-all")}
	if w := c.String("keep-within"); w != "" {
		sp, err := repo.ParseSpan(w)
		if err != nil {
			return p, usagef("--keep-within: %w", err)
		}
		p.Within = sp
	}
	if err := p.Valid(); err != nil {
		return p, usagef("%w", err)
	}
	return p, nil
}

// forgetJSON is one decision of forget, with --json.
type forgetJSON struct {
	MessageType string    `json:"message_type"` // "forget"
	Snapshot    string    `json:"snapshot"`
	Site        string    `json:"site,omitempty"`
	Lineage     string    `json:"lineage,omitempty"`
	Name        string    `json:"name,omitempty"`
	BackupTime  time.Time `json:"backup_time"`
	Keep        bool      `json:"keep"`
	Reasons     []string  `json:"reasons,omitempty"`
	DryRun      bool      `json:"dry_run"`
}

func runForget(c *cli.Context) error {
	p, err := policyOf(c)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		if !p.Empty() {
			return usagef("forget: give snapshot IDs or a --keep-* policy, not both")
		}
		return runForgetIDs(c)
	}
	if p.Empty() && !p.AllowRemoveAll {
		return usagef("forget needs a policy: at least one --keep-* option (or snapshot IDs)")
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	plan, err := r.Forget(c.Context, p, c.Bool("dry-run"))
	if err != nil {
		return err
	}
	if p.Site != "" && len(plan) == 0 {
		return &statusError{exitNotFound, fmt.Sprintf("no snapshot of site %q", p.Site)}
	}
	if err := printPlan(c, plan); err != nil {
		return err
	}
	if c.Bool("prune") && !c.Bool("dry-run") {
		return doPrune(c, r, repo.PruneOptions{Grace: c.Duration("grace")})
	}
	return nil
}

// printPlan shows forget's decisions: a table per site of kept and removed
// snapshots with the reason for each (one JSON object each with --json),
// then the count.
func printPlan(c *cli.Context, plan []repo.Decision) error {
	dry := c.Bool("dry-run")
	removed := 0
	table := [][]string{{"SITE", "ID", "MADE", "NAME", "ACTION", "REASON"}}
	for _, d := range plan {
		s := d.Snapshot
		name := ""
		if s.Manifest != nil {
			name = printable(s.Manifest.Name)
		}
		if !d.Keep {
			removed++
		}
		if c.Bool("json") {
			j := forgetJSON{MessageType: "forget", Snapshot: s.ID.String(), Site: s.SiteName(), Lineage: d.Lineage, Name: name,
				BackupTime: s.Made(), Keep: d.Keep, Reasons: d.Reasons, DryRun: dry}
			if err := emit(c, j); err != nil {
				return err
			}
			continue
		}
		action, reason := "keep", strings.Join(d.Reasons, ", ")
		if !d.Keep {
			action, reason = "remove", "no rule keeps it"
			if dry {
				action = "would remove"
			}
		}
		table = append(table, []string{d.Lineage, s.ID.Short(), s.Made().Local().Format("2006-01-02 15:04"), name, action, reason})
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "summary", "action": "forget", "snapshots": len(plan), "removed": removed, "dry_run": dry})
	}
	sort.SliceStable(table[1:], func(i, j int) bool { return table[1+i][0] < table[1+j][0] })
	if len(plan) > 0 {
		printTable(c, table, nil)
	}
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	out(c, "%s %d of %s\n", verb, removed, plural(len(plan), "snapshot", "snapshots"))
	return nil
}

// runForgetIDs removes the snapshots named by ID prefix.
func runForgetIDs(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	var ids []repo.ID
	for _, a := range c.Args().Slice() {
		s, err := r.FindSnapshot(c.Context, a)
		if err != nil {
			return err
		}
		ids = append(ids, s.ID)
	}
	if c.Bool("dry-run") {
		for _, id := range ids {
			out(c, "would remove %s\n", id.Short())
		}
		return nil
	}
	if err := r.ForgetIDs(c.Context, ids); err != nil {
		return err
	}
	for _, id := range ids {
		if c.Bool("json") {
			if err := emit(c, forgetJSON{MessageType: "forget", Snapshot: id.String(), Reasons: []string{"named"}}); err != nil {
				return err
			}
			continue
		}
		out(c, "removed %s\n", id.Short())
	}
	if c.Bool("prune") {
		return doPrune(c, r, repo.PruneOptions{Grace: c.Duration("grace")})
	}
	return nil
}

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "delete data no snapshot needs, in two phases so running ingests are safe (master key)",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace", Value: repo.DefaultGrace, Usage: "delete packs marked at least this long ago"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be done"},
			&cli.BoolFlag{Name: "no-repack", Usage: "do not repack packs that are partly unused"},
		},
		Action: func(c *cli.Context) error {
			r, err := openRepo(c)
			if err != nil {
				return err
			}
			defer closeRepo(c, r)
			return doPrune(c, r, repo.PruneOptions{Grace: c.Duration("grace"), DryRun: c.Bool("dry-run"), NoRepack: c.Bool("no-repack")})
		},
	}
}

func doPrune(c *cli.Context, r *repo.Repo, opts repo.PruneOptions) error {
	stop := showProgress(c, r)
	res, err := r.Prune(c.Context, opts)
	stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		res.Problems = nonNil(res.Problems)
		return emit(c, struct {
			MessageType string `json:"message_type"`
			DryRun      bool   `json:"dry_run"`
			*repo.PruneResult
		}{"prune", opts.DryRun, res})
	}
	out(c, "%s, %s in use; %s deleted (%s), %d repacked, %d newly marked, %d waiting for the grace period\n",
		plural(res.Packs, "pack", "packs"), plural(res.Referenced, "chunk", "chunks"), plural(res.Deleted, "pack", "packs"),
		human(uint64(res.DeletedBytes)), res.Repacked, res.Marked, res.Pending)
	return nil
}
