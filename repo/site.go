package repo

import (
	"fmt"
	"regexp"
	"time"
)

// MaxSite is the longest site name or tag.
const MaxSite = 64

// MaxTags bounds the tags of one snapshot.
const MaxTags = 16

var siteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidSite checks a site name (or tag): 1 to MaxSite letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidSite(s string) error {
	if len(s) == 0 || len(s) > MaxSite || !siteRE.MatchString(s) {
		return fmt.Errorf("%q: use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", s, MaxSite)
	}
	return nil
}

// checkClaims refuses a manifest whose site or tags are not valid names:
// a writer's claims reach terminals and web pages, so only plain names
// pass (Commit checks them before signing, openManifest after reading).
func (m *Manifest) checkClaims() error {
	if m.Site != "" {
		if err := ValidSite(m.Site); err != nil {
			return fmt.Errorf("site %w", err)
		}
	}
	if len(m.Tags) > MaxTags {
		return fmt.Errorf("%d tags: at most %d", len(m.Tags), MaxTags)
	}
	for _, t := range m.Tags {
		if err := ValidSite(t); err != nil {
			return fmt.Errorf("tag %w", err)
		}
	}
	return nil
}

// SiteName is the snapshot's site: its manifest's, or "" when it has none
// (a manifest written before sites, or not opened).
func (s *Snapshot) SiteName() string {
	if s.Manifest == nil {
		return ""
	}
	return s.Manifest.Site
}

// Made is when the snapshot's backup was made, as its writer claims: the
// manifest's backup time, else the original's modification time, else
// the envelope's claimed (ingest) time.
func (s *Snapshot) Made() time.Time {
	if m := s.Manifest; m != nil {
		if !m.BackupTime.IsZero() {
			return m.BackupTime
		}
		if !m.ModTime.IsZero() {
			return m.ModTime
		}
	}
	return s.Envelope.Claimed
}

// Bounded is the snapshot's backup time as far as the master can trust
// it: Made, but never later than the envelope's claimed ingest time or
// the storage's own time for the object. A backup cannot have been made
// after it was stored, so a writer that claims a future backup time (to
// look fresh to status, or to be "latest") gets the storage's time instead.
func (s *Snapshot) Bounded() time.Time {
	t := s.Made()
	if c := s.Envelope.Claimed; c.Before(t) {
		t = c
	}
	if !s.Stored.IsZero() && s.Stored.Before(t) {
		t = s.Stored
	}
	return t
}

// HasTag reports whether the snapshot's manifest carries tag t.
func (s *Snapshot) HasTag(t string) bool {
	if s.Manifest == nil {
		return false
	}
	for _, x := range s.Manifest.Tags {
		if x == t {
			return true
		}
	}
	return false
}
