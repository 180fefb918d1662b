package main

import (
	"strings"
	"time"

	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func forgetCommand() *cli.Command {
	return &cli.Command{
		Name:      "forget",
		Usage:     "remove snapshots a retention policy does not keep, or the snapshots named (master key)",
		ArgsUsage: "[SNAPSHOT-ID...]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Usage: "keep the newest N snapshots of each writer (-1: all)"},
			&cli.IntFlag{Name: "keep-daily", Usage: "keep the newest snapshot of each of the last N days (-1: every day)"},
			&cli.IntFlag{Name: "keep-weekly", Usage: "keep the newest snapshot of each of the last N weeks (-1: every week)"},
			&cli.IntFlag{Name: "keep-monthly", Usage: "keep the newest snapshot of each of the last N months (-1: every month)"},
			&cli.IntFlag{Name: "keep-yearly", Usage: "keep the newest snapshot of each of the last N years (-1: every year)"},
			&cli.BoolFlag{Name: "unsafe-allow-remove-all", Usage: "let the policy remove every snapshot of a writer"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be removed"},
			&cli.BoolFlag{Name: "prune", Usage: "prune afterwards"},
			&cli.DurationFlag{Name: "grace", Value: repo.DefaultGrace, Usage: "with --prune: delete packs marked at least this long ago"},
		},
		Action: runForget,
	}
}

func runForget(c *cli.Context) error {
	p := repo.Policy{Last: c.Int("keep-last"), Daily: c.Int("keep-daily"), Weekly: c.Int("keep-weekly"),
		Monthly: c.Int("keep-monthly"), Yearly: c.Int("keep-yearly"), AllowRemoveAll: c.Bool("unsafe-allow-remove-all")}
	if err := p.Valid(); err != nil {
		return usagef("%w", err)
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
	removed := 0
	for _, d := range plan {
		verb := "remove"
		if d.Keep {
			verb = "keep  "
		} else {
			removed++
		}
		if c.Bool("json") {
			if err := emit(c, map[string]any{"snapshot": d.Snapshot.ID.String(), "keep": d.Keep, "reasons": d.Reasons, "time": d.Snapshot.Envelope.Claimed}); err != nil {
				return err
			}
			continue
		}
		out(c, "%s %s  %s  %s\n", verb, d.Snapshot.ID.Short(), d.Snapshot.Envelope.Claimed.Local().Format(time.DateTime), strings.Join(d.Reasons, ", "))
	}
	if c.Bool("dry-run") {
		out(c, "would remove %d of %s\n", removed, plural(len(plan), "snapshot", "snapshots"))
		return nil
	}
	out(c, "removed %d of %s\n", removed, plural(len(plan), "snapshot", "snapshots"))
	if c.Bool("prune") {
		return doPrune(c, r, repo.PruneOptions{Grace: c.Duration("grace")})
	}
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
			if err := emit(c, map[string]any{"snapshot": id.String(), "keep": false}); err != nil {
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
	res, err := r.Prune(c.Context, opts)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return emit(c, res)
	}
	out(c, "%s, %s in use; %s deleted (%s), %d repacked, %d newly marked, %d waiting for the grace period\n",
		plural(res.Packs, "pack", "packs"), plural(res.Referenced, "chunk", "chunks"), plural(res.Deleted, "pack", "packs"),
		human(uint64(res.DeletedBytes)), res.Repacked, res.Marked, res.Pending)
	return nil
}
