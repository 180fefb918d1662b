package repo

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/crypto"
)

// planClock is the master's clock in the retention tests.
var planClock = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// fakeSnap is a listed snapshot with the times and claims retention reads.
type fakeSnap struct {
	writer byte
	seq    uint64
	site   string
	made   time.Time // backup time (zero: none in the manifest)
	ingest time.Time // claimed and stored
	tags   []string
	noMan  bool // listed without a manifest
}

func (f fakeSnap) snapshot() *Snapshot {
	var id ID
	copy(id[:], fmt.Sprintf("%c-%s-%05d", f.writer, f.site, f.seq))
	var w crypto.KeyID
	w[0] = f.writer
	s := &Snapshot{ID: id, Envelope: &Envelope{Writer: w, Seq: f.seq, Claimed: f.ingest},
		Stored: f.ingest, FirstSeen: f.ingest}
	if !f.noMan {
		s.Manifest = &Manifest{Name: string(id[:12]), Site: f.site, BackupTime: f.made, ModTime: f.made, Tags: f.tags}
	}
	return s
}

func planOf(t *testing.T, p Policy, snaps ...fakeSnap) map[string]Decision {
	t.Helper()
	r := &Repo{now: func() time.Time { return planClock }}
	var list []*Snapshot
	for _, f := range snaps {
		list = append(list, f.snapshot())
	}
	out := map[string]Decision{}
	for _, d := range r.Plan(list, p) {
		out[strings.TrimRight(string(d.Snapshot.ID[:]), "\x00")] = d
	}
	return out
}

func kept(plan map[string]Decision) (keep, remove []string) {
	for id, d := range plan {
		if d.Keep {
			keep = append(keep, id)
		} else {
			remove = append(remove, id)
		}
	}
	return keep, remove
}

// Five backups made on five days and ingested together (a first ingest
// of a backup folder) are five days to --keep-daily: the backup's own time
// decides, not the ingest.
func TestRetentionUsesBackupTime(t *testing.T) {
	at := planClock.Add(-20 * time.Hour)
	var snaps []fakeSnap
	for i := range 5 {
		snaps = append(snaps, fakeSnap{writer: 'a', seq: uint64(i + 1), site: "forum",
			made: at.Add(time.Duration(i-4) * 24 * time.Hour), ingest: at.Add(time.Duration(i) * time.Second)})
	}
	keep, remove := kept(planOf(t, Policy{Daily: 7}, snaps...))
	if len(keep) != 5 || len(remove) != 0 {
		t.Fatalf("keep-daily 7 of five days: kept %v, removed %v", keep, remove)
	}
	plan := planOf(t, Policy{Daily: 2}, snaps...)
	for i, f := range snaps {
		d := plan[strings.TrimRight(string(f.snapshot().ID[:]), "\x00")]
		if want := i >= 3; d.Keep != want {
			t.Errorf("keep-daily 2: snapshot of day %d kept=%v (%v), want %v", i, d.Keep, d.Reasons, want)
		}
	}
}

// Three forums backed up the same day by one key are three lineages:
// --keep-daily keeps each one's snapshot.
func TestRetentionGroupsBySite(t *testing.T) {
	at := planClock.Add(-20 * time.Hour)
	var snaps []fakeSnap
	for i, site := range []string{"default", "second", "chat"} {
		for n := range 2 {
			snaps = append(snaps, fakeSnap{writer: 'a', seq: uint64(2*i + n + 1), site: site,
				made: at.Add(time.Duration(n-1) * 24 * time.Hour), ingest: at.Add(time.Duration(2*i+n) * time.Minute)})
		}
	}
	plan := planOf(t, Policy{Last: 1}, snaps...)
	keep, remove := kept(plan)
	if len(keep) != 3 || len(remove) != 3 {
		t.Fatalf("keep-last 1 over three sites: kept %v, removed %v", keep, remove)
	}
	for _, d := range plan {
		if d.Keep && d.Snapshot.Manifest.BackupTime.Before(at) {
			t.Errorf("kept the older backup of %s", d.Lineage)
		}
		if d.Lineage != d.Snapshot.Manifest.Site {
			t.Errorf("lineage %q for site %q", d.Lineage, d.Snapshot.Manifest.Site)
		}
	}
	// --site limits the plan to one site.
	only := planOf(t, Policy{Last: 1, Site: "chat"}, snaps...)
	if len(only) != 2 {
		t.Fatalf("forget --site chat planned %d snapshots, want the 2 of chat", len(only))
	}
	for _, d := range only {
		if d.Lineage != "chat" {
			t.Errorf("forget --site chat decided a snapshot of %s", d.Lineage)
		}
	}
}

// restic's --keep-hourly, --keep-within and --keep-tag.
func TestRetentionHourlyWithinTag(t *testing.T) {
	at := planClock.Add(-30 * time.Hour)
	var snaps []fakeSnap
	for i := range 12 { // every 30 minutes
		f := fakeSnap{writer: 'a', seq: uint64(i + 1), site: "forum",
			made: at.Add(time.Duration(i) * 30 * time.Minute), ingest: at.Add(time.Duration(i)*30*time.Minute + time.Minute)}
		if i == 0 {
			f.tags = []string{"before-upgrade"}
		}
		snaps = append(snaps, f)
	}
	count := func(p Policy) int {
		keep, _ := kept(planOf(t, p, snaps...))
		return len(keep)
	}
	if n := count(Policy{Hourly: 3}); n != 3 {
		t.Errorf("keep-hourly 3 kept %d", n)
	}
	if n := count(Policy{Hourly: Unlimited}); n != 6 {
		t.Errorf("keep-hourly -1 over 6 hours kept %d", n)
	}
	if n := count(Policy{Within: Span{Hours: 2}}); n != 5 { // 0, 30, 60, 90, 120 minutes before the newest
		t.Errorf("keep-within 2h kept %d", n)
	}
	plan := planOf(t, Policy{Tags: []string{"before-upgrade"}, Last: 1}, snaps...)
	keep, _ := kept(plan)
	if len(keep) != 2 {
		t.Errorf("keep-tag + keep-last 1 kept %v", keep)
	}
	for _, d := range plan {
		if d.Snapshot.Envelope.Seq == 1 && (!d.Keep || !strings.Contains(strings.Join(d.Reasons, ","), "tag before-upgrade")) {
			t.Errorf("the tagged snapshot: keep=%v %v", d.Keep, d.Reasons)
		}
	}
	if err := (Policy{Within: Span{Hours: -1}}).Valid(); err == nil {
		t.Error("a negative --keep-within passed")
	}
	if (Policy{Tags: []string{"x"}}).Empty() || (Policy{Within: Span{Hours: 1}}).Empty() {
		t.Error("a policy of tags or within counts as empty")
	}
}

// A backup time that goes backwards along a lineage, or lies after the
// snapshot's own ingest, is a claim the master cannot trust: the snapshot
// is kept and displaces nothing.
func TestRetentionSuspiciousBackupTime(t *testing.T) {
	at := planClock.Add(-20 * time.Hour)
	real1 := fakeSnap{writer: 'a', seq: 1, site: "forum", made: at.Add(-48 * time.Hour), ingest: at.Add(-48 * time.Hour)}
	real2 := fakeSnap{writer: 'a', seq: 2, site: "forum", made: at, ingest: at.Add(time.Minute)}
	// A forgery made "yesterday", after the real newest in the chain.
	back := fakeSnap{writer: 'a', seq: 3, site: "forum", made: at.Add(-24 * time.Hour), ingest: at.Add(2 * time.Hour)}
	ahead := fakeSnap{writer: 'a', seq: 4, site: "forum", made: at.Add(10 * time.Hour), ingest: at.Add(3 * time.Hour)}
	plan := planOf(t, Policy{Daily: 1}, real1, real2, back, ahead)
	for id, d := range plan {
		switch d.Snapshot.Envelope.Seq {
		case 2:
			if !d.Keep || len(d.Reasons) != 1 || d.Reasons[0] != "daily" {
				t.Errorf("real newest: keep=%v %v", d.Keep, d.Reasons)
			}
		case 3, 4:
			if !d.Keep || !strings.HasPrefix(d.Reasons[0], "suspicious time: backup made") {
				t.Errorf("%s: keep=%v %v", id, d.Keep, d.Reasons)
			}
		case 1:
			if d.Keep {
				t.Errorf("the older real one kept: %v", d.Reasons)
			}
		}
	}
}

// Snapshots listed without manifests, or written before sites, are grouped
// by their key and dated by their ingest, as before sites existed.
func TestRetentionWithoutSites(t *testing.T) {
	at := planClock.Add(-20 * time.Hour)
	var snaps []fakeSnap
	for i := range 3 {
		snaps = append(snaps, fakeSnap{writer: 'a', seq: uint64(i + 1), ingest: at.Add(time.Duration(i-2) * 24 * time.Hour), noMan: i == 0})
		snaps = append(snaps, fakeSnap{writer: 'b', seq: uint64(i + 1), ingest: at.Add(time.Duration(i-2) * 24 * time.Hour)})
	}
	plan := planOf(t, Policy{Last: 1}, snaps...)
	keep, _ := kept(plan)
	if len(keep) != 2 {
		t.Fatalf("keep-last 1 over two keys without sites kept %v", keep)
	}
	for _, d := range plan {
		if !strings.HasPrefix(d.Lineage, "key ") {
			t.Errorf("lineage %q for a snapshot without a site", d.Lineage)
		}
	}
	if err := refuseRemoveAll(values(planOf(t, Policy{Tags: []string{"none"}}, snaps...)), Policy{}); err == nil {
		t.Error("a policy that removes every snapshot of a lineage was not refused")
	}
}

func values(m map[string]Decision) []Decision {
	var out []Decision
	for _, d := range m {
		out = append(out, d)
	}
	return out
}

// Spans are spelled as restic spells --keep-within, and count calendar
// months and years.
func TestParseSpan(t *testing.T) {
	for in, want := range map[string]Span{"7d": {Days: 7}, "1y6m": {Years: 1, Months: 6}, "36h": {Hours: 36}, "2y5m7d3h": {2, 5, 7, 3}} {
		got, err := ParseSpan(in)
		if err != nil || got != want {
			t.Errorf("ParseSpan(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v prints as %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"", "7", "d", "7w", "1.5d", "-3d", "99999999999d"} {
		if sp, err := ParseSpan(bad); err == nil {
			t.Errorf("ParseSpan(%q) = %+v, want an error", bad, sp)
		}
	}
	mar31 := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	if got := (Span{Months: 1}).Before(mar31); !got.Equal(time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("one month before %s is %s (Go's AddDate normalises, as restic's does)", mar31, got)
	}
}
