package main

import (
	"github.com/larder/larder/repo/backend"
	"github.com/urfave/cli/v2"
)

func copyCommand() *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy the repository to another place (a folder to S3, say), verified and resumable (master key)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Usage: "the destination: a folder, or s3:https://HOST[:PORT]/BUCKET[/PREFIX] (same AWS_* credentials)"},
		},
		Action: runCopy,
	}
}

func runCopy(c *cli.Context) error {
	if c.String("to") == "" {
		return usagef("copy needs --to LOCATION")
	}
	if c.String("to") == c.String("repo") {
		return usagef("copy: --to is the repository itself")
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	dst, err := openBackendAt(c, c.String("to"))
	if err != nil {
		return usagef("--to: %w", err)
	}
	defer func() { _ = dst.Close() }() // releases connections only: nothing to lose
	if s3, ok := backend.Find[*backend.S3](dst); ok {
		if err := s3.MakeBucket(c.Context); err != nil {
			return err
		}
	}
	stop := showProgress(c, r)
	res, err := r.CopyTo(c.Context, dst)
	stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "copy", "to": dst.Location(), "objects": res.Objects, "kept": res.Kept, "bytes": res.Bytes})
	}
	out(c, "copied %s (%s) to %s; %s there already\n", plural(res.Objects, "object", "objects"), human(uint64(res.Bytes)), dst.Location(), plural(res.Kept, "was", "were"))
	out(c, "check it: larder -r %s check --read-data all\n", dst.Location())
	return nil
}
