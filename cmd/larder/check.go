package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "verify the repository's objects (no key needed); with a key also the index and snapshots",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "read-data", Usage: "decrypt and verify PERCENT of the data (master key; \"all\" or e.g. 10%)"},
		},
		Action: runCheck,
	}
}

func runCheck(c *cli.Context) error {
	be, err := openBackend(c)
	if err != nil {
		return err
	}
	share := 0.0
	if v := c.String("read-data"); v != "" {
		if v == "all" || v == "true" {
			share = 1
		} else {
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || f <= 0 || f > 100 {
				return usagef("--read-data wants a percentage (1%% to 100%%) or all, not %q", v)
			}
			share = f / 100
		}
	}
	var res *repo.CheckResult
	if c.String("key") == "" && share == 0 {
		if res, err = repo.CheckKeyless(c.Context, be); err != nil {
			return err
		}
	} else {
		r, key, err := openRepoKey(c)
		if err != nil {
			return err
		}
		defer closeRepo(c, r)
		// Only the master key decrypts chunks: with another key r.Check
		// would read nothing and report success.
		master := key.Role() == crypto.RoleMaster
		if !master && share > 0 {
			return fmt.Errorf("%w: --read-data needs the master key", repo.ErrPermission)
		}
		if master {
			// A prune must not remove packs under the check.
			unlock, err := r.ReadLock(c.Context)
			if err != nil {
				return err
			}
			defer unlock()
		}
		stop := showProgress(c, r)
		res, err = r.Check(c.Context, repo.CheckOptions{ReadData: share})
		stop()
		if err != nil {
			return err
		}
	}
	if c.Bool("json") {
		res.Problems = nonNil(res.Problems)
		if err := emit(c, struct {
			MessageType string `json:"message_type"`
			*repo.CheckResult
		}{"check", res}); err != nil {
			return err
		}
	} else {
		what := "keyless: hashes and signatures"
		if !res.Structural {
			what = fmt.Sprintf("%s, %s, %s, %s", plural(res.Packs, "pack", "packs"), plural(res.Blobs, "chunk", "chunks"),
				plural(res.Snapshots, "snapshot", "snapshots"), plural(res.ReadBlobs, "chunk decrypted", "chunks decrypted"))
		}
		out(c, "checked %s (%s); %s\n", plural(res.Objects, "object", "objects"), human(uint64(res.Bytes)), what)
		if res.Unindexed > 0 {
			out(c, "%s in no index (left by an interrupted ingest; prune removes them)\n", plural(res.Unindexed, "pack is", "packs are"))
		}
		for _, p := range res.Problems {
			problem(c, "%s", p)
		}
	}
	if len(res.Problems) > 0 {
		return &statusError{exitVerify, "check found " + plural(len(res.Problems), "problem", "problems")}
	}
	return nil
}
