package larder

import (
	"encoding/json"
	"time"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// SnapshotInfo is what listings say of a snapshot: `larder snapshots`, the
// admin page and its API. The JSON names are docs/JSON.md's ("snapshot").
// Fields from the manifest are empty when the key could not open it.
type SnapshotInfo struct {
	ID         string     `json:"id"`
	Time       time.Time  `json:"time"` // ingested (the writer's signed claim)
	BackupTime *time.Time `json:"backup_time,omitempty"`
	Site       string     `json:"site,omitempty"`
	Writer     string     `json:"writer"`
	KeyName    string     `json:"key_name,omitempty"`
	Seq        uint64     `json:"seq"`
	Prev       string     `json:"prev,omitempty"`
	Host       string     `json:"host,omitempty"`
	Name       string     `json:"name,omitempty"`
	Size       uint64     `json:"size,omitempty"`
	SHA256     string     `json:"sha256,omitempty"`
	Exact      *bool      `json:"exact,omitempty"`
	NewBytes   uint64     `json:"new_bytes,omitempty"`
	Tags       []string   `json:"tags,omitempty"`
	Damaged    []string   `json:"damaged,omitempty"`
	Stored     *time.Time `json:"stored,omitempty"` // the storage's time
	// Summary: the content summary (recompress.Summary).
	Summary *recompress.Summary `json:"summary,omitempty"`
	// Rejected says why the repository rejects it (a revoked key's).
	Rejected string `json:"rejected,omitempty"`
}

// Describe is a snapshot's SnapshotInfo; keyNames (may be nil) names the
// keys.
func Describe(s *repo.Snapshot, keyNames map[crypto.KeyID]string) SnapshotInfo {
	e := s.Envelope
	j := SnapshotInfo{ID: s.ID.String(), Time: e.Claimed, Writer: e.Writer.String(),
		KeyName: keyNames[e.Writer], Seq: e.Seq, Rejected: s.Rejected}
	if e.Seq > 1 {
		j.Prev = e.Prev.String()
	}
	if !s.Stored.IsZero() {
		st := s.Stored
		j.Stored = &st
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

// Layers is "exact" (an engine rebuilds every layer), "verbatim" (some
// bytes are stored as they are) or "DAMAGED".
func (j *SnapshotInfo) Layers() string {
	switch {
	case len(j.Damaged) > 0:
		return "DAMAGED"
	case j.Exact != nil && *j.Exact:
		return "exact"
	}
	return "verbatim"
}
