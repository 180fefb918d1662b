package main

import (
	"strings"
	"time"

	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func forgetCommand() *cli.Command {
	return &cli.Command{
		Name:  "forget",
		Usage: "remove snapshots a retention policy does not keep (master key)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Usage: "keep the newest N snapshots of each writer"},
			&cli.IntFlag{Name: "keep-daily", Usage: "keep the newest snapshot of each of the last N days"},
			&cli.IntFlag{Name: "keep-weekly", Usage: "keep the newest snapshot of each of the last N weeks"},
			&cli.IntFlag{Name: "keep-monthly", Usage: "keep the newest snapshot of each of the last N months"},
			&cli.IntFlag{Name: "keep-yearly", Usage: "keep the newest snapshot of each of the last N years"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be removed"},
			&cli.BoolFlag{Name: "prune", Usage: "prune afterwards"},
			&cli.DurationFlag{Name: "grace", Value: repo.DefaultGrace, Usage: "with --prune: delete packs marked at least this long ago"},
		},
		Action: runForget,
	}
}

func runForget(c *cli.Context) error {
	p := repo.Policy{Last: c.Int("keep-last"), Daily: c.Int("keep-daily"), Weekly: c.Int("keep-weekly"),
		Monthly: c.Int("keep-monthly"), Yearly: c.Int("keep-yearly")}
	if p.Empty() {
		return usagef("forget needs a policy: at least one --keep-* option")
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
			emit(c, map[string]any{"snapshot": d.Snapshot.ID.String(), "keep": d.Keep, "reasons": d.Reasons, "time": d.Snapshot.Envelope.Claimed})
			continue
		}
		out(c, "%s %s  %s  %s\n", verb, d.Snapshot.ID.Short(), d.Snapshot.Envelope.Claimed.Local().Format(time.DateTime), strings.Join(d.Reasons, ", "))
	}
	if c.Bool("dry-run") {
		out(c, "would remove %d of %d snapshots\n", removed, len(plan))
		return nil
	}
	out(c, "removed %d of %d snapshots\n", removed, len(plan))
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
	out(c, "%d packs, %d chunks in use; %d packs deleted (%s), %d repacked, %d newly marked, %d waiting for the grace period\n",
		res.Packs, res.Referenced, res.Deleted, human(uint64(res.DeletedBytes)), res.Repacked, res.Marked, res.Pending)
	return nil
}
