package repo

import (
	"sync"
	"time"
)

// Progress is told, now and then, how far a long operation got: its
// phase ("read data", "verify", "repack", "restore", ...), and the units
// done of the total (bytes for phases that move bytes, else items). It
// may be called from several goroutines.
type Progress func(phase string, done, total int64)

// progressState is a repository's listener, with the rate limit that
// keeps reports cheap.
type progressState struct {
	mu    sync.Mutex
	fn    Progress
	phase string
	last  time.Time
}

// reportEvery is the least time between two reports of one phase (its
// first and last report always go).
const reportEvery = 100 * time.Millisecond

// SetProgress makes p the listener of this repository's long operations
// (check --read-data, prune, copy, and the root package's restores and
// drills); nil stops reports.
func (r *Repo) SetProgress(p Progress) {
	r.progress.mu.Lock()
	defer r.progress.mu.Unlock()
	r.progress.fn, r.progress.phase = p, ""
}

// Report tells the listener how far phase got, at most every
// reportEvery, and always at a phase's start and end.
func (r *Repo) Report(phase string, done, total int64) {
	ps := &r.progress
	ps.mu.Lock()
	fn := ps.fn
	if fn == nil {
		ps.mu.Unlock()
		return
	}
	now := time.Now()
	if phase == ps.phase && done != total && now.Sub(ps.last) < reportEvery {
		ps.mu.Unlock()
		return
	}
	ps.phase, ps.last = phase, now
	ps.mu.Unlock()
	fn(phase, done, total)
}
