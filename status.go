package larder

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// SiteStatus is a site's health, as `larder status` and the admin page
// show it: its newest usable snapshot and its last drill.
type SiteStatus struct {
	Site      string
	Snapshots int            // usable snapshots of the site
	Newest    *repo.Snapshot // the newest by backup time (bounded: Newer)
	Exact     bool           // every layer of the newest was rebuilt by an engine
	Damaged   bool           // the newest was flagged damaged at ingest
	LastDrill *repo.DrillRecord
	// Rejected counts snapshots that name the site but the repository
	// rejects (a revoked key's); they are not the newest.
	Rejected int
}

// Age is how long ago the newest backup was made (0 without one), by its
// bounded time (repo.Snapshot.Bounded): a claim of a future backup time
// does not make a site look fresh.
func (s *SiteStatus) Age(now time.Time) time.Duration {
	if s.Newest == nil {
		return 0
	}
	return now.Sub(s.Newest.Bounded())
}

// Stale reports whether the site's newest backup is older than maxAge.
func (s *SiteStatus) Stale(now time.Time, maxAge time.Duration) bool {
	return s.Newest == nil || s.Age(now) > maxAge
}

// DrillFailed reports whether the site's last drill failed.
func (s *SiteStatus) DrillFailed() bool { return s.LastDrill != nil && !s.LastDrill.OK }

// Status computes every site's health (master or audit key: sites are in
// the manifests). Snapshots are listed once and drill records read once;
// a drill record counts for the site of the snapshot it drilled.
func Status(ctx context.Context, r *repo.Repo) ([]*SiteStatus, []repo.Problem, error) {
	snaps, err := r.Snapshots(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	bySite := map[string]*SiteStatus{}
	siteOfSnap := map[repo.ID]string{}
	get := func(site string) *SiteStatus {
		st := bySite[site]
		if st == nil {
			st = &SiteStatus{Site: site}
			bySite[site] = st
		}
		return st
	}
	for _, s := range snaps {
		st := get(s.SiteName())
		siteOfSnap[s.ID] = st.Site
		if s.Usable() != nil {
			st.Rejected++
			continue
		}
		st.Snapshots++
		if st.Newest == nil || Newer(s, st.Newest) {
			st.Newest = s
		}
	}
	drills, problems, err := r.Drills(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range drills { // oldest first
		if site, ok := siteOfSnap[d.Snapshot]; ok {
			bySite[site].LastDrill = d
		}
	}
	out := make([]*SiteStatus, 0, len(bySite))
	for _, st := range bySite {
		if m := st.Newest; m != nil && m.Manifest != nil {
			st.Damaged = len(m.Manifest.Damaged) > 0
			var sum recompress.Summary
			st.Exact = json.Unmarshal(m.Manifest.Summary, &sum) == nil && sum.Exact
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out, problems, nil
}

// Newer reports whether a's backup was made after b's, by their bounded
// times (repo.Snapshot.Bounded; ties: the later ingest).
func Newer(a, b *repo.Snapshot) bool {
	if ta, tb := a.Bounded(), b.Bounded(); !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.Envelope.Claimed.After(b.Envelope.Claimed)
}
