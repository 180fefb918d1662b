package repo

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/crypto"
)

// DrillFormat is the format of the drill records written now. Format 1
// records have no format field; format 2 adds format, no_database, zulip
// and exec, and keeps postgres (with the server's version) when a load
// fails. Readers ignore fields they do not know, so every format parses.
const DrillFormat = 2

// DrillRecord is the result of a restore drill, signed by the master key
// and stored in drills/ (visible to audit).
type DrillRecord struct {
	Format   int       `json:"format,omitempty"` // DrillFormat; 0 in format 1 records
	Snapshot ID        `json:"snapshot"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host,omitempty"`
	OK       bool      `json:"ok"`
	Bytes    uint64    `json:"bytes"`     // restored
	SHA256OK bool      `json:"sha256_ok"` // the rebuilt file has the recorded SHA-256
	Postgres *PGDrill  `json:"postgres,omitempty"`
	// NoDatabase: a PostgreSQL drill found no dump in the snapshot (a
	// Zulip export, a file that is no backup), so nothing was loaded; that
	// is no failure.
	NoDatabase bool        `json:"no_database,omitempty"`
	Zulip      *ZulipDrill `json:"zulip,omitempty"`
	Exec       *ExecDrill  `json:"exec,omitempty"`
	Error      string      `json:"error,omitempty"`
}

// PGDrill is the PostgreSQL part of a drill: the dump was loaded into a
// scratch cluster and its row counts compared with the snapshot's summary.
// When the load fails, Version still names the server and Error says why.
type PGDrill struct {
	Version    string   `json:"version"` // "postgres --version"
	Tables     int      `json:"tables"`
	Rows       uint64   `json:"rows"`
	Mismatches []string `json:"mismatches,omitempty"`
}

// ZulipDrill is the check of a Zulip export: every JSON file parses and
// every records.json entry's file is in the export, with its size.
type ZulipDrill struct {
	JSONFiles int      `json:"json_files"` // parsed
	Records   int      `json:"records"`    // records.json entries whose file is present
	Problems  []string `json:"problems,omitempty"`
}

// ExecDrill is a command run against the loaded scratch database (an
// upgrade rehearsal's migration, a check query). Its failure does not fail
// the drill, which is about the snapshot.
type ExecDrill struct {
	Command    string `json:"command"`
	ExitStatus int    `json:"exit_status"`     // -1: not run to an exit (Error says why)
	Error      string `json:"error,omitempty"` // killed by a signal, could not start
}

const (
	drillContext = crypto.SigContext("larder drill v1")
	maxDrill     = 1 << 20
)

// RecordDrill stores a signed drill record (master only).
func (r *Repo) RecordDrill(ctx context.Context, rec *DrillRecord) (ID, error) {
	if err := r.need("record drills", crypto.RoleMaster); err != nil {
		return ID{}, err
	}
	b, err := r.signRecord(drillContext, rec)
	if err != nil {
		return ID{}, err
	}
	name, err := saveContent(ctx, r.be, backend.TypeDrill, b)
	if err != nil {
		return ID{}, fmt.Errorf("%s: saving the drill record: %w", r.be.Location(), err)
	}
	return ParseID(name)
}

// Drills returns the verified drill records, oldest first.
func (r *Repo) Drills(ctx context.Context) ([]*DrillRecord, []Problem, error) {
	var out []*DrillRecord
	var problems []Problem
	err := list(ctx, r.be, backend.TypeDrill, func(name string, _ int64) error {
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeDrill, Name: name}, maxDrill)
		if err != nil {
			return err
		}
		obj := "drills/" + name
		if !verifyContentName(name, b) {
			problems = append(problems, Problem{obj, "content does not match its name"})
			return nil
		}
		var rec DrillRecord
		if err := r.openRecord(drillContext, b, &rec); err != nil {
			problems = append(problems, Problem{obj, err.Error()})
			return nil
		}
		out = append(out, &rec)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, problems, err
}

// AuditReport is what Audit found.
type AuditReport struct {
	Snapshots int
	Writers   int
	Drills    []*DrillRecord
	Check     *CheckResult
	Problems  []Problem
	Warnings  []Problem
}

// OK reports whether the audit found no gap.
func (a *AuditReport) OK() bool { return len(a.Problems) == 0 }

// Audit verifies every snapshot's signature and place in its writer's
// chain (gaps must be explained by signed forget records), that each
// manifest opens, that no snapshot is rejected (a revoked key's after the
// last one its revocation accepts), that every chunk it references is
// stored and every object is what it should be, and the drill records'
// signatures (audit or master key). The work is bounded by the objects
// stored, never by numbers they claim (a forged sequence number of 2^40
// is one gap, reported once).
func (r *Repo) Audit(ctx context.Context) (*AuditReport, error) {
	if err := r.need("audit", crypto.RoleMaster, crypto.RoleAudit); err != nil {
		return nil, err
	}
	rep := &AuditReport{}
	snaps, err := r.Snapshots(ctx, true)
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, r.Warnings()...)
	rep.Snapshots = len(snaps)
	forgotten, err := r.forgotten(ctx)
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, r.Warnings()...)
	chains := map[crypto.KeyID]map[uint64][]chainLink{}
	addLink := func(w crypto.KeyID, seq uint64, l chainLink) {
		if chains[w] == nil {
			chains[w] = map[uint64][]chainLink{}
		}
		chains[w][seq] = append(chains[w][seq], l)
	}
	for _, f := range forgotten {
		if f.Seq >= 1 && f.Seq <= MaxSeq {
			addLink(f.Writer, f.Seq, chainLink{f.ID, f.Prev})
		}
	}
	for _, s := range snaps {
		obj := "snapshots/" + s.ID.String()
		switch {
		case s.Rejected != "":
			rep.Problems = append(rep.Problems, Problem{obj, "rejected: " + s.Rejected})
		case s.ByRevokedKey:
			rep.Warnings = append(rep.Warnings, Problem{obj, fmt.Sprintf("written by revoked key %s (before its revocation: accepted)", s.Envelope.Writer)})
		}
		addLink(s.Envelope.Writer, s.Envelope.Seq, chainLink{s.ID, s.Envelope.Prev})
	}
	rep.Writers = len(chains)
	for writer, chain := range chains {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, auditChain(writer, chain)...)
	}
	drills, dp, err := r.Drills(ctx)
	if err != nil {
		return nil, err
	}
	rep.Drills = drills
	rep.Problems = append(rep.Problems, dp...)
	check, err := r.Check(ctx, CheckOptions{})
	if err != nil {
		return nil, err
	}
	rep.Check = check
	rep.Problems = append(rep.Problems, check.Problems...)
	return rep, nil
}

// chainLink is a place in a writer's chain: the snapshot there and the
// predecessor it names.
type chainLink struct {
	id   ID
	prev ID
}

// auditChain checks one writer's chain: every place from 1 to the highest
// filled, one snapshot each, each naming the one before. Gaps are reported
// as ranges, so the work is the number of snapshots, not the highest
// sequence number.
func auditChain(writer crypto.KeyID, chain map[uint64][]chainLink) []Problem {
	var out []Problem
	obj := fmt.Sprintf("chain of key %s", writer)
	seqs := make([]uint64, 0, len(chain))
	for seq := range chain {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	next := uint64(1)
	for _, seq := range seqs {
		switch {
		case seq == next+1:
			out = append(out, Problem{obj, fmt.Sprintf("snapshot %d is missing and no forget record removed it", next)})
		case seq > next:
			out = append(out, Problem{obj, fmt.Sprintf("snapshots %d to %d are missing and no forget record removed them", next, seq-1)})
		}
		next = seq + 1
		links := chain[seq]
		if len(links) > 1 {
			out = append(out, Problem{obj, fmt.Sprintf("%d snapshots claim place %d (a fork: the key committed from two machines at once, or a copy of it was used)", len(links), seq)})
			continue
		}
		l := links[0]
		if seq == 1 {
			if l.prev != (ID{}) {
				out = append(out, Problem{"snapshots/" + l.id.String(), "the first snapshot of its chain names a predecessor"})
			}
			continue
		}
		if prev := chain[seq-1]; len(prev) == 1 && prev[0].id != l.prev {
			out = append(out, Problem{"snapshots/" + l.id.String(), fmt.Sprintf("names predecessor %s, but place %d holds %s", l.prev.Short(), seq-1, prev[0].id.Short())})
		}
	}
	return out
}
