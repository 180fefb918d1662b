package main

import (
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:   "audit",
		Usage:  "verify signatures, chains, drill records and that every chunk is stored (audit or master key)",
		Action: runAudit,
	}
}

func runAudit(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	rep, err := r.Audit(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := emit(c, auditJSON{MessageType: "audit", OK: rep.OK(), Snapshots: rep.Snapshots, Writers: rep.Writers,
			Drills: len(rep.Drills), DrillsPassed: passed(rep.Drills), Objects: rep.Check.Objects, Problems: nonNil(rep.Problems), Warnings: nonNil(rep.Warnings)}); err != nil {
			return err
		}
	} else {
		out(c, "%s from %s; %s (%s), %s, %s checked\n",
			plural(rep.Snapshots, "snapshot", "snapshots"), plural(rep.Writers, "writer", "writers"),
			plural(rep.Check.Objects, "object", "objects"), human(uint64(rep.Check.Bytes)),
			plural(rep.Check.Packs, "pack", "packs"), plural(rep.Check.Blobs, "chunk", "chunks"))
		ok := 0
		for _, d := range rep.Drills {
			if d.OK {
				ok++
			}
		}
		out(c, "%s, %d passed", plural(len(rep.Drills), "drill record", "drill records"), ok)
		if n := len(rep.Drills); n > 0 {
			d := rep.Drills[n-1]
			out(c, "; last %s of snapshot %s", d.Time.Local().Format("2006-01-02 15:04"), d.Snapshot.Short())
		}
		out(c, "\n")
		for _, w := range rep.Warnings {
			warn(c, "%s", w)
		}
		for _, p := range rep.Problems {
			problem(c, "%s", p)
		}
	}
	if !rep.OK() {
		return &statusError{exitVerify, "audit found " + plural(len(rep.Problems), "problem", "problems")}
	}
	out(c, "audit: no problems\n")
	return nil
}

// auditJSON is audit's --json line.
type auditJSON struct {
	MessageType  string         `json:"message_type"` // "audit"
	OK           bool           `json:"ok"`
	Snapshots    int            `json:"snapshots"`
	Writers      int            `json:"writers"`
	Drills       int            `json:"drills"`
	DrillsPassed int            `json:"drills_passed"`
	Objects      int            `json:"objects"`
	Problems     []repo.Problem `json:"problems"`
	Warnings     []repo.Problem `json:"warnings"`
}

// passed counts the drills that passed.
func passed(ds []*repo.DrillRecord) int {
	n := 0
	for _, d := range ds {
		if d.OK {
			n++
		}
	}
	return n
}

// nonNil makes an empty list print as [] rather than null.
func nonNil(p []repo.Problem) []repo.Problem {
	if p == nil {
		return []repo.Problem{}
	}
	return p
}
