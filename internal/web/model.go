package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// snapshotInfo is what the pages and the API say of a snapshot; its JSON
// field names are those of larder snapshots --json (docs/JSON.md).
type snapshotInfo struct {
	ID         string              `json:"id"`
	Time       time.Time           `json:"time"` // ingested (the writer's signed claim)
	BackupTime *time.Time          `json:"backup_time,omitempty"`
	Site       string              `json:"site,omitempty"`
	Writer     string              `json:"writer"`
	KeyName    string              `json:"key_name,omitempty"`
	Seq        uint64              `json:"seq"`
	Prev       string              `json:"prev,omitempty"`
	Host       string              `json:"host,omitempty"`
	Name       string              `json:"name,omitempty"`
	Size       uint64              `json:"size,omitempty"`
	SHA256     string              `json:"sha256,omitempty"`
	Exact      *bool               `json:"exact,omitempty"`
	NewBytes   uint64              `json:"new_bytes,omitempty"`
	Tags       []string            `json:"tags,omitempty"`
	Damaged    []string            `json:"damaged,omitempty"`
	Summary    *recompress.Summary `json:"summary,omitempty"`
	Rejected   string              `json:"rejected,omitempty"`
}

func describe(s *repo.Snapshot, names map[crypto.KeyID]string) *snapshotInfo {
	e := s.Envelope
	j := &snapshotInfo{ID: s.ID.String(), Time: e.Claimed, Writer: e.Writer.String(), KeyName: names[e.Writer],
		Seq: e.Seq, Rejected: s.Rejected}
	if e.Seq > 1 {
		j.Prev = e.Prev.String()
	}
	if m := s.Manifest; m != nil {
		made := s.Made()
		j.BackupTime, j.Site, j.Host, j.Tags = &made, m.Site, m.Host, m.Tags
		j.Name, j.Size, j.SHA256, j.NewBytes, j.Damaged = m.Name, m.Size, m.SHA256, m.Stats.NewStored, m.Damaged
		var sum recompress.Summary
		if json.Unmarshal(m.Summary, &sum) == nil {
			j.Summary = &sum
			exact := sum.Exact
			j.Exact = &exact
		}
	}
	return j
}

// Layers is "exact", "verbatim" or "DAMAGED".
func (j *snapshotInfo) Layers() string {
	switch {
	case len(j.Damaged) > 0:
		return "DAMAGED"
	case j.Exact != nil && *j.Exact:
		return "exact"
	}
	return "verbatim"
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

// human prints a byte count as 1.5 MB.
func human(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// ago prints a duration as people read ages: 45m, 20h, 3d4h.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	days := int(d / (24 * time.Hour))
	if h := int(d/time.Hour) % 24; h != 0 {
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return fmt.Sprintf("%dd", days)
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
