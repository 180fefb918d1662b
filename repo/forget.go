package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
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

// ForgetRecord is one signed forget record: when the master removed which
// snapshots (the admin page's activity log shows them).
type ForgetRecord struct {
	Time    time.Time
	Removed []Forgotten
}

// ForgetRecords returns the master-signed forget records, oldest first
// (any key: the records are signed, not sealed). Records that are not the
// master's are reported (Warnings) and skipped; only a failing storage is
// an error.
func (r *Repo) ForgetRecords(ctx context.Context) ([]ForgetRecord, error) {
	var out []ForgetRecord
	n := 0
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
		if n+len(rec.Removed) > maxForgotten {
			r.warn(obj, "skipped: more forgotten snapshots than a repository holds")
			return nil
		}
		n += len(rec.Removed)
		out = append(out, ForgetRecord(rec))
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// forgotten reads every forget record's removed snapshots.
func (r *Repo) forgotten(ctx context.Context) ([]Forgotten, error) {
	recs, err := r.ForgetRecords(ctx)
	var out []Forgotten
	for _, rec := range recs {
		out = append(out, rec.Removed...)
	}
	return out, err
}

// maxForgotten bounds the forgotten places kept in memory.
const maxForgotten = 1 << 22

// Policy says which snapshots forget keeps, per lineage: the snapshots of
// one site written by one key (see Plan). Each count is a number of
// snapshots or buckets, or Unlimited; the meanings are restic's.
type Policy struct {
	Last    int // the newest n snapshots, in chain order
	Hourly  int // the newest snapshot of each of the last n hours that have one
	Daily   int // ... days
	Weekly  int
	Monthly int
	Yearly  int
	// Within keeps every snapshot made within this span of the lineage's
	// newest one (restic's --keep-within).
	Within Span
	// Tags keeps every snapshot that carries one of them (--keep-tag).
	Tags []string
	// Site, when set, limits forget to that site's snapshots; the others
	// are not part of the plan.
	Site string
	// AllowRemoveAll lets a policy remove every snapshot of a lineage
	// (restic's --unsafe-allow-remove-all); without it Forget refuses.
	AllowRemoveAll bool
}

// Unlimited, as a count of a Policy, keeps every snapshot the rule applies
// to (restic's -1).
const Unlimited = -1

// Empty reports whether the policy keeps nothing.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.IsZero() && len(p.Tags) == 0
}

// Valid checks the counts: at least 0, or Unlimited.
func (p Policy) Valid() error {
	for _, n := range []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
		if n < Unlimited {
			return fmt.Errorf("forget: a count of %d: give 0 or more, or -1 for unlimited", n)
		}
	}
	if p.Within.Years < 0 || p.Within.Months < 0 || p.Within.Days < 0 || p.Within.Hours < 0 {
		return fmt.Errorf("forget: --keep-within %s: give a span of time ahead, e.g. 7d or 1y6m", p.Within)
	}
	return nil
}

// Span is a calendar span of time as restic's --keep-within spells it:
// years, months, days and hours ("1y6m", "7d", "36h").
type Span struct{ Years, Months, Days, Hours int }

// ParseSpan reads a span: numbers each followed by y, m, d or h.
func ParseSpan(s string) (Span, error) {
	var sp Span
	if s == "" {
		return sp, fmt.Errorf("an empty span of time")
	}
	n, digits := 0, false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if n > 1_000_000 {
				return Span{}, fmt.Errorf("span %q: number too large", s)
			}
			n, digits = n*10+int(r-'0'), true
			continue
		}
		if !digits {
			return Span{}, fmt.Errorf("span %q: give numbers each followed by y, m, d or h (e.g. 1y6m, 7d, 36h)", s)
		}
		switch r {
		case 'y':
			sp.Years += n
		case 'm':
			sp.Months += n
		case 'd':
			sp.Days += n
		case 'h':
			sp.Hours += n
		default:
			return Span{}, fmt.Errorf("span %q: unknown unit %q (use y, m, d or h)", s, r)
		}
		n, digits = 0, false
	}
	if digits {
		return Span{}, fmt.Errorf("span %q: a number without its unit (y, m, d or h)", s)
	}
	return sp, nil
}

// IsZero reports an empty span.
func (s Span) IsZero() bool { return s == Span{} }

// Before is the time s before t.
func (s Span) Before(t time.Time) time.Time {
	return t.AddDate(-s.Years, -s.Months, -s.Days).Add(-time.Duration(s.Hours) * time.Hour)
}

func (s Span) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit string
	}{{s.Years, "y"}, {s.Months, "m"}, {s.Days, "d"}, {s.Hours, "h"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// Decision is forget's verdict on one snapshot.
type Decision struct {
	Snapshot *Snapshot
	Keep     bool
	Reasons  []string // why kept
	// Lineage names the group the snapshot was decided in: its site, or
	// "key <id>" for a snapshot with no site (written before sites).
	Lineage string
}

// Retention cannot be steered by a writer (SECURITY.md, "Retention"):
//
//   - A lineage is the snapshots of one site written by one key: a writer
//     can only place snapshots into its own lineages, so a thief of one
//     forum's key cannot displace another forum's snapshots by naming its
//     site.
//   - A snapshot's times are its writer's claims, which the master trusts
//     only where it can check them. Its ingest time (the envelope's) is
//     suspicious when it goes backwards along its writer's chain, lies
//     more than clockSlack ahead of the master's clock, or more than
//     storeSlack away from the storage's own time for the object. Its
//     backup time (when the backup was made: the Discourse name's time or
//     the file's mtime, which decides its day, week, ... bucket) is
//     suspicious when it is earlier than that of the snapshot before it
//     in its lineage, or later than its own ingest (beyond storeSlack).
//     Suspicious snapshots are kept and take no place: they displace
//     nothing.
//   - Because each writer's snapshots are chained by hash and the storage
//     dates each object, a forger can only add snapshots after the newest
//     real one of a lineage, made no earlier than it: never into past
//     days, weeks, months or years.
//   - Within a bucket (a day, a week, …) a newer snapshot takes the place
//     of older ones only once it is settled: the master has known it for
//     settleTime (its own first sight, kept in its cache). Until then both
//     are kept, so a forgery added today cannot push out today's real
//     snapshot before someone has seen it (the writer's next ingest warns
//     of snapshots it did not make; revoke the key to reject them).
//   - "last" counts chain positions: a flood of new snapshots does push
//     older ones out of that rule alone; combine it with calendar rules.
//     "within" counts from the lineage's newest unsuspicious backup time.
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

// lineageKey groups snapshots for retention (see the rules above).
type lineageKey struct {
	site   string
	writer crypto.KeyID
}

func (k lineageKey) String() string {
	if k.site == "" {
		return "key " + k.writer.String()
	}
	return k.site
}

// Plan applies a policy to snapshots (all of them, as Snapshots lists,
// with their manifests opened for sites and backup times; a snapshot
// without a manifest is grouped by its key and dated by its ingest).
func (r *Repo) Plan(snaps []*Snapshot, p Policy) []Decision {
	lineages := map[lineageKey][]*Snapshot{}
	var order []lineageKey
	var out []Decision
	for _, s := range snaps {
		if p.Site != "" && s.SiteName() != p.Site {
			continue
		}
		k := lineageKey{s.SiteName(), s.Envelope.Writer}
		if s.Rejected != "" {
			out = append(out, Decision{Snapshot: s, Keep: true, Reasons: []string{"rejected: left alone"}, Lineage: k.String()})
			continue
		}
		if lineages[k] == nil {
			order = append(order, k)
		}
		lineages[k] = append(lineages[k], s)
	}
	now := r.now()
	rules := []bucketRule{
		{p.Hourly, "hourly", func(t time.Time) string { return t.Format("2006-01-02 15") }},
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, "-", w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
		{p.Yearly, "yearly", func(t time.Time) string { return t.Format("2006") }},
	}
	for _, k := range order {
		decisions := planLineage(lineages[k], p, rules, now)
		for i := range decisions {
			decisions[i].Lineage = k.String()
		}
		out = append(out, decisions...)
	}
	return out
}

// planLineage decides the snapshots of one lineage, newest first.
func planLineage(chain []*Snapshot, p Policy, rules []bucketRule, now time.Time) []Decision {
	sort.Slice(chain, func(i, j int) bool { return chain[i].Envelope.Seq > chain[j].Envelope.Seq })
	decisions := make([]Decision, len(chain))
	suspicious := markSuspicious(chain, decisions, now)
	var newest time.Time // the newest unsuspicious backup time
	for i, s := range chain {
		if !suspicious[i] && s.Made().After(newest) {
			newest = s.Made()
		}
	}
	for i, s := range chain {
		d := &decisions[i]
		if p.Last == Unlimited || i < p.Last {
			d.Keep = true
			d.Reasons = append(d.Reasons, "last")
		}
		if !p.Within.IsZero() && !suspicious[i] && !s.Made().Before(p.Within.Before(newest)) {
			d.Keep = true
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for _, t := range p.Tags {
			if s.HasTag(t) {
				d.Keep = true
				d.Reasons = append(d.Reasons, "tag "+t)
				break
			}
		}
	}
	for _, rule := range rules {
		if rule.n != 0 {
			keepBuckets(decisions, suspicious, rule, now)
		}
	}
	return decisions
}

// markSuspicious fills in each decision's snapshot and keeps those whose
// times are not to be trusted (chain is newest first).
func markSuspicious(chain []*Snapshot, decisions []Decision, now time.Time) []bool {
	suspicious := make([]bool, len(chain))
	var last, lastMade time.Time
	for i := len(chain) - 1; i >= 0; i-- { // oldest first
		s := chain[i]
		decisions[i].Snapshot = s
		if why := suspiciousTime(s, last, lastMade, now); why != "" {
			suspicious[i] = true
			decisions[i].Keep = true
			decisions[i].Reasons = append(decisions[i].Reasons, "suspicious time: "+why)
		}
		if t := s.Envelope.Claimed; t.After(last) {
			last = t
		}
		if t := s.Made(); t.After(lastMade) {
			lastMade = t
		}
	}
	return suspicious
}

// keepBuckets applies one calendar rule: the newest settled snapshot of
// each of its newest n buckets (by backup time) is kept, with any newer
// unsettled ones of the bucket.
func keepBuckets(decisions []Decision, suspicious []bool, rule bucketRule, now time.Time) {
	buckets := 0
	var cur string
	settled := false // the current bucket has its settled snapshot
	pending := -1    // the bucket's newest, kept unsettled, before an older one shows up
	for i := range decisions {
		if suspicious[i] {
			continue
		}
		s := decisions[i].Snapshot
		k := rule.key(s.Made().UTC())
		if k != cur {
			if rule.n != Unlimited && buckets >= rule.n {
				break
			}
			cur, settled, pending = k, false, -1
			buckets++
		}
		if settled {
			continue
		}
		d := &decisions[i]
		d.Keep = true
		if pending >= 0 {
			r := decisions[pending].Reasons
			r[len(r)-1] = rule.reason + " (new: the one before it in its " + rule.reason + " place is kept too)"
			pending = -1
		}
		d.Reasons = append(d.Reasons, rule.reason)
		if isSettled(s, now) {
			settled = true
		} else {
			pending = i
		}
	}
}

// suspiciousTime says why a snapshot's claimed times are not to be
// trusted ("" if they are), given the newest ingest and backup times
// before it in its lineage.
func suspiciousTime(s *Snapshot, prev, prevMade, now time.Time) string {
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
	case s.Made().Before(prevMade):
		return "backup made earlier than the one before it"
	case s.Made().After(t.Add(storeSlack)):
		return "backup made after it was ingested"
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
	snaps, err := r.Snapshots(ctx, true)
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
	kept := map[string]bool{}
	var seen []string
	for _, d := range plan {
		if d.Snapshot.Rejected != "" {
			continue
		}
		if _, ok := kept[d.Lineage]; !ok {
			seen = append(seen, d.Lineage)
		}
		kept[d.Lineage] = kept[d.Lineage] || d.Keep
	}
	for _, l := range seen {
		if !kept[l] {
			return fmt.Errorf("forget: the policy would remove every snapshot of %s; give --unsafe-allow-remove-all if that is meant", l)
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
