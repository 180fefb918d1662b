package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func repairCommand() *cli.Command {
	return &cli.Command{
		Name:  "repair",
		Usage: "repair the repository (master key): repair index",
		Subcommands: []*cli.Command{{
			Name:  "index",
			Usage: "rebuild the index from the packs: every chunk is read, decrypted and matched to its ID (reads the whole repository)",
			Action: func(c *cli.Context) error {
				r, err := openRepo(c)
				if err != nil {
					return err
				}
				defer closeRepo(c, r)
				res, err := r.RepairIndex(c.Context)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return emit(c, map[string]any{"message_type": "repair", "what": "index", "packs": res.Packs, "verified": res.Verified,
						"failed": res.Failed, "replaced": res.Removed, "problems": nonNil(res.Problems)})
				}
				out(c, "read %s: %s verified, %s failed; the index replaces %s\n", plural(res.Packs, "pack", "packs"), plural(res.Verified, "chunk", "chunks"),
					plural(res.Failed, "claim", "claims"), plural(res.Removed, "index file", "index files"))
				for _, p := range res.Problems {
					problem(c, "%s", p)
				}
				if res.Failed > 0 {
					return &statusError{exitVerify, fmt.Sprintf("%s of chunks did not verify", plural(res.Failed, "claim", "claims"))}
				}
				return nil
			},
		}},
	}
}
