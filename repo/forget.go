package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/larder/larder/repo/backend"

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
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err := crypto.Verify(r.cfg.master.SignPub, ctx, s.Body, s.Sig); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if err := json.Unmarshal(s.Body, v); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
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

// Policy says which snapshots forget keeps, per lineage (a writer key's
// chain). Each count is a number of snapshots or buckets, or Unlimited.
type Policy struct {
	Last    int // the newest n snapshots, in chain order
	Daily   int // the newest snapshot of each of the last n days that have one
	Weekly  int
	Monthly int
	Yearly  int
	// AllowRemoveAll lets a policy remove every snapshot of a lineage
	// (restic's --unsafe-allow-remove-all); without it Forget refuses.
	AllowRemoveAll bool
}

// Unlimited, as a count of a Policy, keeps every snapshot the rule applies
// to (restic's -1).
const Unlimited = -1

// Empty reports whether the policy keeps nothing.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0
}

// Valid checks the counts: at least 0, or Unlimited.
func (p Policy) Valid() error {
	for _, n := range []int{p.Last, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
		if n < Unlimited {
			return fmt.Errorf("forget: a count of %d: give 0 or more, or -1 for unlimited", n)
		}
	}
	return nil
}

// Decision is forget's verdict on one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // why kept
}

// Retention cannot be steered by a writer (SECURITY.md, "Retention"):
//
//   - A snapshot's time is its writer's claim, which the master trusts
//     only where it can check it: a time that goes backwards along its
//     writer's chain, lies more than clockSlack ahead of the master's
//     clock, or more than storeSlack away from the storage's own time for
//     the object marks the snapshot suspicious. Suspicious snapshots are
//     kept and take no place: they displace nothing.
//   - Because each writer's snapshots are chained by hash and the storage
//     dates each object, a forger can only add snapshots after the newest
//     real one, dated now: never into past days, weeks, months or years.
//   - Within a bucket (a day, a week, …) a newer snapshot takes the place
//     of older ones only once it is settled: the master has known it for
//     settleTime (its own first sight, kept in its cache). Until then both
//     are kept, so a forgery added today cannot push out today's real
//     snapshot before someone has seen it (the writer's next ingest warns
//     of snapshots it did not make; revoke the key to reject them).
//   - "last" counts chain positions: a flood of new snapshots does push
//     older ones out of that rule alone; combine it with calendar rules.
//   - Snapshots the repository rejects (a revoked key's, after the last
//     one it accepts) are neither counted nor removed by a policy.
const (
	clockSlack = 24 * time.Hour
	storeSlack = time.Hour
	settleTime = 12 * time.Hour
)

// bucketRule is one calendar rule of a policy.
type bucketRule struct {
	n      int
	reason string
	key    func(time.Time) string
}

// Plan applies a policy to snapshots (all of them, as Snapshots lists).
func (r *Repo) Plan(snaps []*Snapshot, p Policy) []Decision {
	byWriter := map[crypto.KeyID][]*Snapshot{}
	var out []Decision
	for _, s := range snaps {
		if s.Rejected != "" {
			out = append(out, Decision{Snapshot: s, Keep: true, Reasons: []string{"rejected: left alone"}})
			continue
		}
		byWriter[s.Envelope.Writer] = append(byWriter[s.Envelope.Writer], s)
	}
	now := r.now()
	rules := []bucketRule{
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, "-", w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
		{p.Yearly, "yearly", func(t time.Time) string { return t.Format("2006") }},
	}
	for _, chain := range byWriter {
		decisions := planLineage(chain, p, rules, now)
		out = append(out, decisions...)
	}
	return out
}

// planLineage decides the snapshots of one lineage, newest first.
func planLineage(chain []*Snapshot, p Policy, rules []bucketRule, now time.Time) []Decision {
	sort.Slice(chain, func(i, j int) bool { return chain[i].Envelope.Seq > chain[j].Envelope.Seq })
	decisions := make([]Decision, len(chain))
	suspicious := make([]bool, len(chain))
	// Oldest first for the backwards check.
	var last time.Time
	for i := len(chain) - 1; i >= 0; i-- {
		s := chain[i]
		decisions[i].Snapshot = s
		t := s.Envelope.Claimed
		if why := suspiciousTime(s, last, now); why != "" {
			suspicious[i] = true
			decisions[i].Keep = true
			decisions[i].Reasons = append(decisions[i].Reasons, "suspicious time: "+why)
		}
		if t.After(last) {
			last = t
		}
	}
	for i := range decisions {
		if p.Last == Unlimited || i < p.Last {
			decisions[i].Keep = true
			decisions[i].Reasons = append(decisions[i].Reasons, "last")
		}
	}
	for _, rule := range rules {
		if rule.n == 0 {
			continue
		}
		buckets := 0
		var cur string
		settled := false // the current bucket has its settled snapshot
		for i := range decisions {
			if suspicious[i] {
				continue
			}
			s := decisions[i].Snapshot
			k := rule.key(s.Envelope.Claimed.UTC())
			if k != cur {
				if rule.n != Unlimited && buckets >= rule.n {
					break
				}
				cur, settled = k, false
				buckets++
			}
			if settled {
				continue
			}
			d := &decisions[i]
			d.Keep = true
			if isSettled(s, now) {
				settled = true
				d.Reasons = append(d.Reasons, rule.reason)
			} else {
				d.Reasons = append(d.Reasons, rule.reason+" (not settled: an older one of its "+rule.reason+" place is kept too)")
			}
		}
	}
	return decisions
}

// suspiciousTime says why a snapshot's claimed time is not to be trusted
// ("" if it is), given the newest time before it in its chain.
func suspiciousTime(s *Snapshot, prev, now time.Time) string {
	t := s.Envelope.Claimed
	switch {
	case t.Before(prev):
		return "earlier than the snapshot before it"
	case t.After(now.Add(clockSlack)):
		return "in the future"
	case !s.Stored.IsZero() && t.After(s.Stored.Add(storeSlack)):
		return "later than the storage stored it"
	case !s.Stored.IsZero() && t.Before(s.Stored.Add(-storeSlack)):
		return "earlier than the storage stored it (back-dated)"
	}
	return ""
}

// isSettled reports whether the master has known a snapshot long enough
// for it to take an older one's place.
func isSettled(s *Snapshot, now time.Time) bool {
	return !s.FirstSeen.IsZero() && now.Sub(s.FirstSeen) >= settleTime
}

// Forget removes the snapshots the policy does not keep (master only),
// after recording them in a signed forget record. With dryRun it only
// returns the plan.
func (r *Repo) Forget(ctx context.Context, p Policy, dryRun bool) ([]Decision, error) {
	if err := r.need("forget snapshots", crypto.RoleMaster); err != nil {
		return nil, err
	}
	if err := p.Valid(); err != nil {
		return nil, err
	}
	if p.Empty() && !p.AllowRemoveAll {
		return nil, fmt.Errorf("forget: the policy keeps nothing; give at least one --keep-* option")
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.unlockWarn(context.WithoutCancel(ctx))
	if !dryRun {
		if err := r.checkCanDelete(ctx); err != nil {
			return nil, err
		}
	}
	snaps, err := r.Snapshots(ctx, false)
	if err != nil {
		return nil, err
	}
	plan := r.Plan(snaps, p)
	if err := refuseRemoveAll(plan, p); err != nil {
		return nil, err
	}
	if dryRun {
		return plan, nil
	}
	return plan, r.removeSnapshots(ctx, plan)
}

// removeSnapshots records the snapshots a plan does not keep in a signed
// forget record and removes them, with any that an earlier forget
// recorded but a crash left.
func (r *Repo) removeSnapshots(ctx context.Context, plan []Decision) error {
	rec := forgetRecord{Time: r.now().UTC()}
	for _, d := range plan {
		if !d.Keep {
			e := d.Snapshot.Envelope
			rec.Removed = append(rec.Removed, Forgotten{ID: d.Snapshot.ID, Writer: e.Writer, Seq: e.Seq, Prev: e.Prev, Claimed: e.Claimed})
		}
	}
	if len(rec.Removed) > 0 {
		b, err := r.signRecord(forgetContext, rec)
		if err != nil {
			return err
		}
		// The record first: a crash after it leaves snapshots that are
		// recorded as forgotten but still there, which listings pass by
		// and the next forget removes.
		if _, err := saveContent(ctx, r.be, backend.TypeForget, b); err != nil {
			return fmt.Errorf("%s: saving the forget record: %w", r.be.Location(), err)
		}
	}
	gone, err := r.forgotten(ctx)
	if err != nil {
		return err
	}
	left, err := r.leftForgotten(ctx, gone)
	if err != nil {
		return err
	}
	for _, f := range append(rec.Removed, left...) {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: f.ID.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("%s: removing snapshot %s: %w", r.be.Location(), f.ID.Short(), err)
		}
	}
	return nil
}

// leftForgotten returns the forgotten snapshots still stored (a forget
// that stopped between its record and the removals).
func (r *Repo) leftForgotten(ctx context.Context, gone []Forgotten) ([]Forgotten, error) {
	want := forgottenSet(gone)
	var out []Forgotten
	err := list(ctx, r.be, backend.TypeSnapshot, func(name string, _ int64) error {
		if id, err := ParseID(name); err == nil && want[id] {
			out = append(out, Forgotten{ID: id})
		}
		return nil
	})
	return out, err
}

// refuseRemoveAll fails when a plan removes every snapshot of a lineage
// and the policy does not allow it.
func refuseRemoveAll(plan []Decision, p Policy) error {
	if p.AllowRemoveAll {
		return nil
	}
	kept := map[crypto.KeyID]bool{}
	seen := map[crypto.KeyID]bool{}
	for _, d := range plan {
		if d.Snapshot.Rejected != "" {
			continue
		}
		w := d.Snapshot.Envelope.Writer
		seen[w] = true
		kept[w] = kept[w] || d.Keep
	}
	for w := range seen {
		if !kept[w] {
			return fmt.Errorf("forget: the policy would remove every snapshot of key %s; give --unsafe-allow-remove-all if that is meant", w)
		}
	}
	return nil
}

// ForgetIDs removes the snapshots named (master only), after recording
// them in a signed forget record: rejected ones too.
func (r *Repo) ForgetIDs(ctx context.Context, ids []ID) error {
	if err := r.need("forget snapshots", crypto.RoleMaster); err != nil {
		return err
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return err
	}
	defer lock.unlockWarn(context.WithoutCancel(ctx))
	if err := r.checkCanDelete(ctx); err != nil {
		return err
	}
	snaps, err := r.Snapshots(ctx, false)
	if err != nil {
		return err
	}
	byID := map[ID]*Snapshot{}
	for _, s := range snaps {
		byID[s.ID] = s
	}
	var plan []Decision
	for _, id := range ids {
		s := byID[id]
		if s == nil {
			return fmt.Errorf("%s: %w: no snapshot %s", r.be.Location(), backend.ErrNotFound, id.Short())
		}
		plan = append(plan, Decision{Snapshot: s})
	}
	return r.removeSnapshots(ctx, plan)
}

// Forgotten IDs as a set.
func forgottenSet(fs []Forgotten) map[ID]bool {
	m := make(map[ID]bool, len(fs))
	for _, f := range fs {
		m[f.ID] = true
	}
	return m
}
