package main

import (
	"github.com/urfave/cli/v2"
)

func unlockCommand() *cli.Command {
	return &cli.Command{
		Name:  "unlock",
		Usage: "remove stale locks: of processes gone, silent for 30 minutes, released, or signed by nobody of the repository (master key)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "remove-all", Usage: "remove every lock, also those in force"},
		},
		Action: func(c *cli.Context) error {
			r, err := openRepo(c)
			if err != nil {
				return err
			}
			defer closeRepo(c, r)
			n, err := r.Unlock(c.Context, c.Bool("remove-all"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return emit(c, map[string]any{"message_type": "unlock", "removed": n})
			}
			what := "stale locks"
			switch {
			case c.Bool("remove-all") && n == 1:
				what = "lock"
			case c.Bool("remove-all"):
				what = "locks"
			case n == 1:
				what = "stale lock"
			}
			out(c, "removed %d %s\n", n, what)
			return nil
		},
	}
}
