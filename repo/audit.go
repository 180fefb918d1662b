package repo

import (
	"context"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"sort"
	"time"

	"github.com/larder/larder/crypto"
)

// DrillRecord is the result of a restore drill, signed by the master key
// and stored in drills/ (visible to audit).
type DrillRecord struct {
	Snapshot ID        `json:"snapshot"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host,omitempty"`
	OK       bool      `json:"ok"`
	Bytes    uint64    `json:"bytes"`     // restored
	SHA256OK bool      `json:"sha256_ok"` // the rebuilt file has the recorded SHA-256
	Postgres *PGDrill  `json:"postgres,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// PGDrill is the PostgreSQL part of a drill: the dump was loaded into a
// scratch cluster and its row counts compared with the snapshot's summary.
type PGDrill struct {
	Version    string   `json:"version"`
	Tables     int      `json:"tables"`
	Rows       uint64   `json:"rows"`
	Mismatches []string `json:"mismatches,omitempty"`
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
// manifest opens, that every chunk it references is stored and every
// object hashes to its name, and the drill records' signatures (audit or
// master key).
func (r *Repo) Audit(ctx context.Context) (*AuditReport, error) {
	if err := r.need("audit", crypto.RoleMaster, crypto.RoleAudit); err != nil {
		return nil, err
	}
	rep := &AuditReport{}
	problem := func(obj, format string, a ...any) {
		rep.Problems = append(rep.Problems, Problem{obj, fmt.Sprintf(format, a...)})
	}
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return nil, err
	}
	revoked := map[crypto.KeyID]bool{}
	for id := range recs {
		if ok, err := r.revoked(ctx, id); err != nil {
			problem("keys/"+id.String()+".revoked", "%v", err)
		} else if ok {
			revoked[id] = true
		}
	}
	forgotten, err := r.forgotten(ctx)
	if err != nil {
		problem("forget", "%v", err)
	}
	type link struct {
		id   ID
		prev ID
	}
	chains := map[crypto.KeyID]map[uint64][]link{}
	for _, f := range forgotten {
		if chains[f.Writer] == nil {
			chains[f.Writer] = map[uint64][]link{}
		}
		chains[f.Writer][f.Seq] = append(chains[f.Writer][f.Seq], link{f.ID, f.Prev})
	}
	err = list(ctx, r.be, backend.TypeSnapshot, func(name string, _ int64) error {
		obj := "snapshots/" + name
		env, err := loadEnvelope(ctx, r.be, name)
		if err != nil {
			problem(obj, "%v", err)
			return nil
		}
		rep.Snapshots++
		if err := verifyEnvelope(env, recs); err != nil {
			problem(obj, "%v", err)
			return nil
		}
		if revoked[env.Writer] {
			rep.Warnings = append(rep.Warnings, Problem{obj, fmt.Sprintf("written by revoked key %s", env.Writer)})
		}
		if _, err := r.openManifest(env); err != nil {
			problem(obj, "%v", err)
		}
		if chains[env.Writer] == nil {
			chains[env.Writer] = map[uint64][]link{}
		}
		id, _ := ParseID(name)
		chains[env.Writer][env.Seq] = append(chains[env.Writer][env.Seq], link{id, env.Prev})
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Writers = len(chains)
	for writer, chain := range chains {
		var top uint64
		for seq := range chain {
			top = max(seq, top)
		}
		for seq := uint64(1); seq <= top; seq++ {
			links := chain[seq]
			obj := fmt.Sprintf("chain of key %s", writer)
			switch {
			case len(links) == 0:
				problem(obj, "snapshot %d is missing and no forget record removed it", seq)
				continue
			case len(links) > 1:
				problem(obj, "%d snapshots claim place %d (a fork: the key committed from two machines at once, or a copy of it was used)", len(links), seq)
				continue
			}
			l := links[0]
			if seq == 1 {
				if l.prev != (ID{}) {
					problem("snapshots/"+l.id.String(), "the first snapshot of its chain names a predecessor")
				}
				continue
			}
			if prev := chain[seq-1]; len(prev) == 1 && prev[0].id != l.prev {
				problem("snapshots/"+l.id.String(), "names predecessor %s, but place %d holds %s", l.prev.Short(), seq-1, prev[0].id.Short())
			}
		}
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
