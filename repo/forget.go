package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"sort"
	"time"

	"github.com/larder/larder/crypto"
)

// A forget record (forget/<sha256>) lists snapshots the master removed,
// with their place in their writers' chains, signed by the master: audit
// tells a chain gap left by forget from a snapshot that went missing.
const (
	forgetContext = crypto.SigContext("larder forget v1")
	maxForget     = 64 << 20
)

// Forgotten is a removed snapshot's place in its writer's chain.
type Forgotten struct {
	ID      ID           `json:"id"`
	Writer  crypto.KeyID `json:"writer"`
	Seq     uint64       `json:"seq"`
	Prev    ID           `json:"prev"`
	Claimed time.Time    `json:"claimed"`
}

type forgetRecord struct {
	Time    time.Time   `json:"time"`
	Removed []Forgotten `json:"removed"`
}

type signedRecord struct {
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

// signRecord signs a JSON body with the master key.
func (r *Repo) signRecord(ctx crypto.SigContext, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig, err := r.master.Sign(ctx, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedRecord{Body: body, Sig: sig})
}

// openRecord verifies a master-signed record and decodes its body.
func (r *Repo) openRecord(ctx crypto.SigContext, b []byte, v any) error {
	var s signedRecord
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := crypto.Verify(r.cfg.master.SignPub, ctx, s.Body, s.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if err := json.Unmarshal(s.Body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// forgotten reads every forget record. Records that are not the master's
// are reported and skipped; only a failing storage is an error.
func (r *Repo) forgotten(ctx context.Context) ([]Forgotten, error) {
	var out []Forgotten
	err := list(ctx, r.be, backend.TypeForget, func(name string, _ int64) error {
		obj := "forget/" + name
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeForget, Name: name}, maxForget)
		if err != nil {
			if transient(err) {
				return err
			}
			r.warn(obj, fmt.Sprintf("skipped: %v", err))
			return nil
		}
		if !verifyContentName(name, b) {
			r.warn(obj, "skipped: content does not match its name")
			return nil
		}
		var rec forgetRecord
		if err := r.openRecord(forgetContext, b, &rec); err != nil {
			r.warn(obj, fmt.Sprintf("skipped: not a record the master signed: %v", err))
			return nil
		}
		if len(out)+len(rec.Removed) > maxForgotten {
			r.warn(obj, "skipped: more forgotten snapshots than a repository holds")
			return nil
		}
		out = append(out, rec.Removed...)
		return nil
	})
	return out, err
}

// maxForgotten bounds the forgotten places kept in memory.
const maxForgotten = 1 << 22

// Policy says which snapshots forget keeps. Counting is per writer key.
type Policy struct {
	Last    int // the newest n snapshots, in chain order
	Daily   int // the newest snapshot of each of the last n days that have one
	Weekly  int
	Monthly int
	Yearly  int
}

// Empty reports whether the policy keeps nothing (forget refuses it).
func (p Policy) Empty() bool {
	return p.Last+p.Daily+p.Weekly+p.Monthly+p.Yearly == 0
}

// Decision is forget's verdict on one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // why kept
}

// Retention does not trust writers' clocks. A snapshot's time is the
// earlier of its writer's claim and the storage's time for the object; a
// time that goes backwards along its writer's chain, or lies ahead of the
// master's clock, marks the snapshot suspicious, and suspicious snapshots
// are always kept. Within a writer, "last" counts chain positions, so a
// forged clock cannot reorder a chain: a compromised writer can only add
// snapshots after the newest real one, never displace older ones from
// their days, weeks, months or years.
const clockSlack = 24 * time.Hour

// Plan applies a policy to snapshots (all of them, as Snapshots lists).
func (r *Repo) Plan(snaps []*Snapshot, p Policy) []Decision {
	byWriter := map[crypto.KeyID][]*Snapshot{}
	for _, s := range snaps {
		byWriter[s.Envelope.Writer] = append(byWriter[s.Envelope.Writer], s)
	}
	now := r.now()
	var out []Decision
	for _, chain := range byWriter {
		sort.Slice(chain, func(i, j int) bool { return chain[i].Envelope.Seq < chain[j].Envelope.Seq })
		decisions := make([]Decision, len(chain))
		var last time.Time
		for i, s := range chain {
			decisions[i].Snapshot = s
			t := effectiveTime(s)
			if t.Before(last) || t.After(now.Add(clockSlack)) {
				decisions[i].Keep = true
				decisions[i].Reasons = append(decisions[i].Reasons, "suspicious time")
			}
			if t.After(last) {
				last = t
			}
		}
		// Newest first.
		for i, j := 0, len(decisions)-1; i < j; i, j = i+1, j-1 {
			decisions[i], decisions[j] = decisions[j], decisions[i]
		}
		for i := range decisions {
			if i < p.Last {
				decisions[i].Keep = true
				decisions[i].Reasons = append(decisions[i].Reasons, "last")
			}
		}
		bucket := func(n int, reason string, key func(time.Time) string) {
			seen := map[string]bool{}
			for i := range decisions {
				if len(seen) >= n {
					return
				}
				k := key(effectiveTime(decisions[i].Snapshot))
				if seen[k] {
					continue
				}
				seen[k] = true
				decisions[i].Keep = true
				decisions[i].Reasons = append(decisions[i].Reasons, reason)
			}
		}
		bucket(p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") })
		bucket(p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, w) })
		bucket(p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") })
		bucket(p.Yearly, "yearly", func(t time.Time) string { return t.Format("2006") })
		out = append(out, decisions...)
	}
	return out
}

func effectiveTime(s *Snapshot) time.Time {
	t := s.Envelope.Claimed
	if !s.Stored.IsZero() && s.Stored.Before(t) {
		t = s.Stored
	}
	return t.UTC()
}

// Forget removes the snapshots the policy does not keep (master only),
// after recording them in a signed forget record. With dryRun it only
// returns the plan.
func (r *Repo) Forget(ctx context.Context, p Policy, dryRun bool) ([]Decision, error) {
	if err := r.need("forget snapshots", crypto.RoleMaster); err != nil {
		return nil, err
	}
	if p.Empty() {
		return nil, fmt.Errorf("forget: the policy keeps nothing; give at least one --keep-* option")
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	if !dryRun {
		if err := r.checkCanDelete(ctx); err != nil {
			return nil, err
		}
	}
	snaps, err := r.Snapshots(ctx, false)
	if err != nil {
		return nil, err
	}
	r.storageTimes(ctx, snaps)
	plan := r.Plan(snaps, p)
	if dryRun {
		return plan, nil
	}
	rec := forgetRecord{Time: r.now().UTC()}
	for _, d := range plan {
		if !d.Keep {
			e := d.Snapshot.Envelope
			rec.Removed = append(rec.Removed, Forgotten{ID: d.Snapshot.ID, Writer: e.Writer, Seq: e.Seq, Prev: e.Prev, Claimed: e.Claimed})
		}
	}
	if len(rec.Removed) == 0 {
		return plan, nil
	}
	b, err := r.signRecord(forgetContext, rec)
	if err != nil {
		return nil, err
	}
	// The record first: a crash after it leaves snapshots that are
	// recorded as forgotten but still there, which the next forget removes.
	if _, err := saveContent(ctx, r.be, backend.TypeForget, b); err != nil {
		return nil, fmt.Errorf("%s: saving the forget record: %w", r.be.Location(), err)
	}
	for _, f := range rec.Removed {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: f.ID.String()}); err != nil {
			return nil, fmt.Errorf("%s: removing snapshot %s: %w", r.be.Location(), f.ID.Short(), err)
		}
	}
	return plan, nil
}

// storageTimes fills in the storage's time of each snapshot object when
// the backend can tell.
func (r *Repo) storageTimes(ctx context.Context, snaps []*Snapshot) {
	for _, s := range snaps {
		if fi, err := r.be.Stat(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: s.ID.String()}); err == nil {
			s.Stored = fi.ModTime
		}
	}
}
