package web

import (
	"context"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/larder/larder/internal/units"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
)

// snapshotInfo is what the pages and the API say of a snapshot; its JSON
// field names are those of larder snapshots --json (docs/JSON.md).
type snapshotInfo struct {
	larder.SnapshotInfo
}

func describe(s *repo.Snapshot, names map[crypto.KeyID]string) *snapshotInfo {
	return &snapshotInfo{larder.Describe(s, names)}
}

// Tables, Rows and Uploads sum up the content summary.
func (j *snapshotInfo) Tables() int {
	if j.Summary == nil {
		return 0
	}
	return len(j.Summary.Tables)
}

func (j *snapshotInfo) Rows() uint64 {
	var n uint64
	if j.Summary != nil {
		for _, t := range j.Summary.Tables {
			n += t.Rows
		}
	}
	return n
}

func (j *snapshotInfo) Uploads() int {
	if j.Summary == nil || j.Summary.Tar == nil {
		return 0
	}
	for _, f := range j.Summary.Tar.ByTop {
		if f.Name == "uploads" {
			return f.Members
		}
	}
	return 0
}

// Short is the ID's first 8 hex digits, as the command line prints them.
func (j *snapshotInfo) Short() string { return j.ID[:8] }

// KeyLabel names the writer key.
func (j *snapshotInfo) KeyLabel() string {
	if j.KeyName != "" {
		return j.KeyName
	}
	return j.Writer[:8]
}

// catalog is one reading of the repository for a page: snapshots (with
// manifests), key names and drill records.
type catalog struct {
	snaps  []*repo.Snapshot
	names  map[crypto.KeyID]string
	drills []*repo.DrillRecord
	byID   map[repo.ID]*repo.Snapshot
}

func (s *Server) readCatalog(ctx context.Context, withDrills bool) (*catalog, error) {
	snaps, err := s.r.Snapshots(ctx, true)
	if err != nil {
		return nil, err
	}
	recs, _, err := s.r.Keys(ctx)
	if err != nil {
		return nil, err
	}
	c := &catalog{snaps: snaps, names: map[crypto.KeyID]string{}, byID: map[repo.ID]*repo.Snapshot{}}
	for _, k := range recs {
		c.names[k.ID] = k.Name
	}
	for _, sn := range snaps {
		c.byID[sn.ID] = sn
	}
	sort.SliceStable(c.snaps, func(i, j int) bool { return larder.Newer(c.snaps[i], c.snaps[j]) })
	if withDrills {
		if c.drills, _, err = s.r.Drills(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// site returns a site's snapshots, newest first.
func (c *catalog) site(site string) []*snapshotInfo {
	var out []*snapshotInfo
	for _, sn := range c.snaps {
		if site == "" || sn.SiteName() == site {
			out = append(out, describe(sn, c.names))
		}
	}
	return out
}

// drillInfo is a drill record with its snapshot's site (drills --json).
type drillInfo struct {
	Site string `json:"site,omitempty"`
	*repo.DrillRecord
}

// Short is the drilled snapshot's short ID.
func (d drillInfo) Short() string { return d.Snapshot.Short() }

func (c *catalog) drillsOf(id *repo.ID) []drillInfo {
	var out []drillInfo
	for i := len(c.drills) - 1; i >= 0; i-- { // newest first
		d := c.drills[i]
		if id != nil && d.Snapshot != *id {
			continue
		}
		di := drillInfo{DrillRecord: d}
		if sn := c.byID[d.Snapshot]; sn != nil {
			di.Site = sn.SiteName()
		}
		out = append(out, di)
	}
	return out
}

// find resolves a snapshot ID prefix (as the command line takes it).
func (s *Server) find(ctx context.Context, prefix string) (*repo.Snapshot, error) {
	sn, err := s.r.FindSnapshot(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotFound, err)
	}
	if sn.Manifest == nil {
		return nil, fmt.Errorf("%w: snapshot %s: its manifest does not open", errNotFound, sn.ID.Short())
	}
	return sn, nil
}

// printable replaces control characters and cuts s to n runes: for the
// server's log lines of what a client typed.
func printable(s string, n int) string {
	r := []rune(strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s))
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

var funcs = template.FuncMap{
	"human":     human,
	"siteURL":   siteURL,
	"siteLabel": siteLabel,
	"drillLine": drillLine,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago":   func(t time.Time) string { return ago(time.Since(t)) },
	"short": func(s string) string { return s[:min(8, len(s))] },
	"pct": func(done, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return done * 100 / total
	},
}

func human(n uint64) string { return units.Bytes(n) }

func ago(d time.Duration) string { return units.Age(d) }
