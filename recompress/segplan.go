package recompress

import (
	"sync"

	"github.com/larder/larder/recompress/deflate"
)

// Parts at ingest. The engine that verifies a member reports its block
// boundaries, which, while it matches, are the original's. The planner
// cuts the member there into parts: a run of stored blocks of at least
// minStoredRun content bytes becomes a stored part (no engine at restore),
// and engine parts end at the first block boundary past partSize content
// bytes. Every part that restarts the engine (after a stored run, or
// after an engine part) is proved before it is recorded: an engine
// restarted there with a warm-up (deflate.ProveRestart, the cheapest kind
// first) must reach the verifying engine's state at that boundary. A
// restart that no warm-up proves is dropped, merging its part into the
// one before (whose engine then simply runs on), so nothing unproved
// reaches the recipe.

const (
	// partSize is the content of an engine or stored part: the unit of
	// work at restore and what it holds in memory per part in flight.
	partSize = 2 << 20
	// minStoredRun is the shortest stored run worth a part: shorter runs
	// cost more in the restart's warm-up than they save.
	minStoredRun = 128 << 10
	// ringKeep is the content kept for proofs behind the newest byte:
	// more than the verifying engine can lag behind the reader plus the
	// longest warm-up.
	ringKeep = 4 << 20
)

// planPart is a part being planned.
type planPart struct {
	Segment
	start deflate.BlockEnd // the boundary it starts at
	proof *proof           // the restart to prove (engine parts after the first)
}

// proof is a restart waiting to be proved, or proved.
type proof struct {
	cut   deflate.BlockEnd
	state *deflate.State
	kind  deflate.Warm // the warm-up that proved it; 0: none did
}

// planner plans the parts of one verifier's member. block runs on the
// engine's goroutine; the reading side takes the proofs that are ready.
type planner struct {
	params deflate.Params
	engine *deflate.Writer

	mu      sync.Mutex
	prev    deflate.BlockEnd // the start of the next block
	parts   []*planPart
	cur     *planPart // the engine part being planned
	run     *planPart // a stored run being planned
	runEnd  *deflate.State
	pending []*proof // restarts not yet sent to be proved
	off     bool     // planning gave up (too many parts)
	ended   bool     // the final block was seen
	wg      sync.WaitGroup
}

func newPlanner(p deflate.Params, e *deflate.Writer) *planner {
	if p.Engine == deflate.Stored || p.Rsync != deflate.RsyncOff {
		return nil
	}
	pl := &planner{params: p, engine: e}
	pl.cur = &planPart{Segment: Segment{Kind: SegStart}}
	e.OnBlockEnd(pl.block)
	return pl
}

// block takes a block boundary of the verifying engine.
func (pl *planner) block(e deflate.BlockEnd) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.off || pl.ended {
		return
	}
	start := pl.prev
	pl.prev = e
	if len(pl.parts) > MaxSegments/2 {
		pl.off = true
		return
	}
	if e.Stored {
		pl.storedBlock(start, e)
		return
	}
	if pl.run != nil {
		pl.endRun()
	}
	pl.cur.Content += uint64(e.Input - start.Input)
	pl.cur.Bits += e.Bit - start.Bit
	switch {
	case e.Final:
		pl.closeCur()
		pl.ended = true
	case pl.cur.Content >= partSize:
		pl.closeCur()
		pl.newRestart(e, pl.engine.State())
	}
}

// storedBlock adds a stored block [start, e) to the stored run.
func (pl *planner) storedBlock(start, e deflate.BlockEnd) {
	if pl.run == nil {
		pl.run = &planPart{Segment: Segment{Kind: SegStored}, start: start}
	}
	r := pl.run
	r.Stored = appendStoredRun(r.Stored, uint16(e.StoredLen))
	r.Content += uint64(e.StoredLen)
	r.Bits += e.Bit - start.Bit
	switch {
	case e.Final:
		pl.endRun()
		pl.closeCur()
		pl.ended = true
	case r.Content >= minStoredRun:
		// Maybe the run's end: keep the engine's state here.
		pl.runEnd = pl.engine.StateInto(pl.runEnd)
		if r.Content >= partSize {
			pl.endRun()
		}
	}
}

// endRun ends the stored run at the last stored block: a long one becomes
// a part, with a restart after it; a short one stays in the engine part.
func (pl *planner) endRun() {
	r := pl.run
	pl.run = nil
	end := pl.prev
	if !end.Stored {
		// Called at the first block after the run: the run ended where
		// that block started.
		end = deflate.BlockEnd{Input: r.start.Input + int64(r.Content), Bit: r.start.Bit + r.Bits}
	}
	if r.Content < minStoredRun {
		pl.cur.Content += r.Content
		pl.cur.Bits += r.Bits
		return
	}
	pl.closeCur()
	pl.parts = append(pl.parts, r)
	if !pl.prev.Final || !pl.prev.Stored {
		state := pl.runEnd
		pl.runEnd = nil
		pl.newRestart(end, state)
	}
}

// closeCur ends the engine part being planned, if it has content.
func (pl *planner) closeCur() {
	if pl.cur != nil && pl.cur.Content > 0 {
		pl.parts = append(pl.parts, pl.cur)
	}
	pl.cur = &planPart{Segment: Segment{Kind: SegStart}, start: pl.prev}
}

// newRestart makes the next engine part restart at e, to be proved
// against state.
func (pl *planner) newRestart(e deflate.BlockEnd, state *deflate.State) {
	pr := &proof{cut: e, state: state}
	pl.cur = &planPart{start: e, proof: pr}
	pl.pending = append(pl.pending, pr)
}

// ready hands over the proofs whose content has arrived (up to end).
func (pl *planner) ready(end uint64, final bool) []*proof {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []*proof
	keep := pl.pending[:0]
	for _, pr := range pl.pending {
		need := alignUp(uint64(pr.cut.Input + deflate.SplitLookahead(pl.params)))
		switch {
		case need <= end:
			out = append(out, pr)
		case !final:
			keep = append(keep, pr)
		}
	}
	pl.pending = keep
	return out
}

// testRefuseProof, set by tests only, refuses the proofs it returns true
// for (by the cut's input offset), to exercise the merging of unproved
// restarts.
var testRefuseProof func(cut int64) bool

// prove runs pr against in, content from offset from.
func (pl *planner) prove(pr *proof, in []byte, from uint64) {
	defer pl.wg.Done()
	if testRefuseProof != nil && testRefuseProof(pr.cut.Input) {
		return
	}
	for k := deflate.Warm1; k <= deflate.MaxWarm; k++ {
		ws := uint64(deflate.WarmStart(pl.params, pr.cut.Input, k))
		if ws < from {
			break
		}
		end := min(uint64(len(in))+from, alignUp(uint64(pr.cut.Input+deflate.SplitLookahead(pl.params))))
		ok, err := deflate.ProveRestart(pl.params, in[ws-from:end-from], pr.cut, k, pr.state)
		if err == nil && ok {
			pl.mu.Lock()
			pr.kind = k
			pl.mu.Unlock()
			break
		}
	}
	pl.mu.Lock()
	pr.state = nil
	pl.mu.Unlock()
}

// segments returns the member's parts once every proof is done, merging
// each part whose restart was not proved into the one before; nil when
// the member is one part.
func (pl *planner) segments(contentLen, exact uint64) []Segment {
	pl.wg.Wait()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.off || !pl.ended {
		return nil
	}
	var segs []Segment
	var content, bits uint64
	for _, p := range pl.parts {
		s := p.Segment
		if p.proof != nil {
			s.Kind = uint8(p.proof.kind)
		}
		content += s.Content
		bits += s.Bits
		if len(segs) > 0 && s.Kind == SegStart {
			// Unproved: the engine of the part before runs on, through
			// the stored parts before this one too.
			segs = mergeInto(segs, s)
			continue
		}
		segs = append(segs, s)
	}
	if len(segs) < 2 || content != contentLen || bits != exact*8 {
		return nil
	}
	for _, s := range segs {
		if s.Content > MaxPartContent {
			return nil
		}
	}
	return segs
}

// mergeInto adds part s, whose restart is not proved, to the last engine
// part of segs, turning the stored parts after that one into engine work
// (or the first part into an engine part from the stream's start).
func mergeInto(segs []Segment, s Segment) []Segment {
	for len(segs) > 0 && segs[len(segs)-1].Kind == SegStored {
		st := segs[len(segs)-1]
		segs = segs[:len(segs)-1]
		s.Content += st.Content
		s.Bits += st.Bits
	}
	if len(segs) == 0 {
		s.Kind = SegStart
		return append(segs, s)
	}
	last := &segs[len(segs)-1]
	last.Content += s.Content
	last.Bits += s.Bits
	return segs
}

// appendStoredRun adds a block of length l to a run list.
func appendStoredRun(runs []deflate.StoredRun, l uint16) []deflate.StoredRun {
	if n := len(runs); n > 0 && runs[n-1].Len == l && runs[n-1].Count < 1<<32-1 {
		runs[n-1].Count++
		return runs
	}
	return append(runs, deflate.StoredRun{Len: l, Count: 1})
}
