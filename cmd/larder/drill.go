package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/larder/larder/internal/pgcluster"

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
			&cli.BoolFlag{Name: "postgres", Usage: "load the dump into a scratch PostgreSQL and compare row counts (a Zulip export gets its own check; no dump is \"no database\")"},
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of the PostgreSQL programs (default: searched)"},
			&cli.StringFlag{Name: "pg-user", Usage: "as root, the OS user that runs the scratch PostgreSQL (default: postgres, else nobody)"},
			&cli.StringFlag{Name: "tmp", Usage: "folder for the restored file and the scratch cluster"},
			&cli.StringFlag{Name: "exec", Usage: "with --postgres, run this shell command against the loaded database (PG* variables set) and record its exit status"},
			&cli.BoolFlag{Name: "keep", Usage: "with --postgres, leave the loaded scratch database running and print how to connect and stop it"},
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
	var kept []*larder.KeptDatabase
	opts := drillOptions(c, &kept)
	// The operator's mistakes (a flag, a folder, no PostgreSQL) are usage
	// errors found before the passphrase is asked; no drill is recorded.
	if err := drillSetupError(larder.CheckDrill(c.Context, opts)); err != nil {
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
	if c.Bool("keep") && len(snaps) > 1 {
		return usagef("drill --keep keeps one database: choose one snapshot (SNAPSHOT, --latest or --random 1), not %d", len(snaps))
	}
	failed, execFailed := 0, 0
	var recordErr error
	for _, s := range snaps {
		kept = kept[:0]
		stop := showProgress(c, r)
		rec, err := larder.Drill(c.Context, r, s, opts)
		stop()
		if rec == nil {
			return drillSetupError(err)
		}
		if err != nil && recordErr == nil {
			// The drill ran but its record could not be stored: say how
			// it went, then fail.
			recordErr = fmt.Errorf("drill %s: %w (--no-record drills without storing a record)", s.ID.Short(), err)
		}
		if !rec.OK {
			failed++
		}
		if rec.Exec != nil && rec.Exec.ExitStatus != 0 {
			execFailed++
		}
		if err := reportDrill(c, s, rec, kept); err != nil {
			return err
		}
	}
	switch {
	case failed > 0:
		return &statusError{exitVerify, fmt.Sprintf("%d of %d drills failed", failed, len(snaps))}
	case recordErr != nil:
		return recordErr
	case execFailed > 0:
		return fmt.Errorf("the --exec command failed in %d of %d drills", execFailed, len(snaps))
	}
	return nil
}

// drillOptions are the flags' DrillOptions; databases kept (--keep) are
// appended to kept.
func drillOptions(c *cli.Context, kept *[]*larder.KeptDatabase) larder.DrillOptions {
	host, _ := os.Hostname() // empty when unknown: the record goes without
	opts := larder.DrillOptions{Postgres: c.Bool("postgres"), PGBin: c.String("pg-bin"), PGUser: c.String("pg-user"),
		TempDir: c.String("tmp"), Host: host, NoRecord: c.Bool("no-record"), Exec: c.String("exec")}
	// The command's output is the operator's to read, but stdout carries
	// only JSON with --json and nothing with --quiet.
	opts.ExecStdout, opts.ExecStderr = c.App.Writer, c.App.ErrWriter
	if c.Bool("json") || c.Bool("quiet") {
		opts.ExecStdout = c.App.ErrWriter
	}
	if c.Bool("keep") {
		opts.Keep = func(k *larder.KeptDatabase) { *kept = append(*kept, k) }
	}
	return opts
}

// drillFlags name the flag of each DrillOptions field a setup error blames.
var drillFlags = map[string]string{"PGBin": "--pg-bin", "PGUser": "--pg-user", "TempDir": "--tmp",
	"Exec": "--exec", "Keep": "--keep", "": "--postgres"}

// drillSetupError makes a drill's setup error a usage error naming the
// flag at fault; other errors pass.
func drillSetupError(err error) error {
	var se *larder.DrillSetupError
	if errors.As(err, &se) {
		return usagef("drill %s: %w", drillFlags[se.Option], err)
	}
	return err
}

// checkDrillArgs accepts exactly one way of choosing the snapshots:
// SNAPSHOT, --latest, --random N or --all; and --keep and --exec only with
// --postgres.
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
	if (c.Bool("keep") || c.IsSet("exec")) && !c.Bool("postgres") {
		return usagef("drill --keep and --exec need --postgres: they use the loaded database")
	}
	if c.IsSet("exec") && strings.TrimSpace(c.String("exec")) == "" {
		return usagef("drill --exec needs a command")
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

// reportDrill prints or emits one drill's result and the database it
// kept.
func reportDrill(c *cli.Context, s *repo.Snapshot, rec *repo.DrillRecord, kept []*larder.KeptDatabase) error {
	if c.Bool("json") {
		j := drillJSON{MessageType: "drill", Site: s.SiteName(), DrillRecord: rec}
		if len(kept) > 0 {
			k := kept[0]
			j.Kept = &keptJSON{Host: k.Host, Port: k.Port, User: k.User, Database: k.Database, Dir: k.Dir, Psql: k.Psql, Stop: k.StopCommand}
		}
		return emit(c, j)
	}
	printDrill(c, s, rec)
	for _, k := range kept {
		out(c, "kept the scratch database running (%s), with the snapshot's data and no password on its socket:\n", pgcluster.ShortVersion(k.Version))
		out(c, "  connect: %s\n", k.Psql)
		out(c, "  env:     PGHOST=%s PGPORT=%d PGUSER=%s PGDATABASE=%s\n", k.Host, k.Port, k.User, k.Database)
		out(c, "  stop:    %s\n", k.StopCommand)
	}
	if c.Bool("keep") && len(kept) == 0 && (rec.NoDatabase || rec.Postgres != nil) {
		warn(c, "drill %s: no database kept: %s", s.ID.Short(), map[bool]string{true: "the snapshot holds no dump", false: "the dump did not load"}[rec.NoDatabase])
	}
	if c.String("exec") != "" && rec.Exec == nil && rec.NoDatabase {
		warn(c, "drill %s: --exec not run: the snapshot holds no dump", s.ID.Short())
	}
	return nil
}

// drillJSON is a drill's --json line: the record and, with --keep, the
// database left running.
type drillJSON struct {
	MessageType string `json:"message_type"` // "drill"
	Site        string `json:"site,omitempty"`
	*repo.DrillRecord
	Kept *keptJSON `json:"kept,omitempty"`
}

type keptJSON struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Database string `json:"database"`
	Dir      string `json:"dir"`
	Psql     string `json:"psql"`
	Stop     string `json:"stop"`
}

// printDrill prints one drill's result line, and its error, row count
// mismatches and Zulip problems to stderr.
func printDrill(c *cli.Context, s *repo.Snapshot, rec *repo.DrillRecord) {
	name := ""
	if s.Manifest != nil {
		name = printable(s.Manifest.Name)
		if site := s.SiteName(); site != "" {
			name += " (site " + site + ")"
		}
	}
	status := "ok"
	if !rec.OK {
		status = "FAILED"
	}
	line := fmt.Sprintf("drill %s %s: %s, %s", s.ID.Short(), name, status, larder.DrillSummary(rec))
	out(c, "%s\n", line)
	if rec.Error != "" {
		problem(c, "drill %s: %s", s.ID.Short(), oneLine(rec.Error))
	}
	var problems []string
	if rec.Postgres != nil {
		problems = append(problems, rec.Postgres.Mismatches...)
	}
	if rec.Zulip != nil {
		problems = append(problems, rec.Zulip.Problems...)
	}
	if rec.Exec != nil && rec.Exec.Error != "" {
		problems = append(problems, "--exec: "+rec.Exec.Error)
	}
	for _, m := range problems {
		problem(c, "drill %s: %s", s.ID.Short(), m)
	}
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
