package deflate

import (
	"errors"
	"fmt"
)

// Segments: an engine restarted inside a stream.
//
// A deflate stream can be rebuilt in pieces that meet at block boundaries
// of the original. A piece that starts at input offset X (a block
// boundary, at bit offset B of the stream) is made by a fresh engine fed
// from WarmStart(X): it runs its own algorithm over the bytes before X,
// discarding what it makes (the warm-up), ends a block at X as the
// original did, and from there writes the stream's bits from B on. The
// warm-up starts on a window boundary (a multiple of FeedChunk, so of the
// window size, as every window position of the original is), one to eight windows and a
// little before X (its kind, Warm), so that by X the warm engine has, with
// two windows or more, slid its window at the same places as the original
// and, once its parse has fallen into step with the
// original's (deflate parses resynchronise within a few matches), holds
// the same hash chains and match state. Nothing guarantees that in theory:
// a piece is exact only when it is checked against the original, which is
// what ingest does before it records a split.

// BlockEnd is a block boundary as an engine makes it.
type BlockEnd struct {
	Input     int64  // input offset where the block ends (the next one starts)
	Bit       uint64 // bit offset of the stream after the block
	Stored    bool   // the block was a stored block
	StoredLen int    // its length, when stored
	Final     bool   // the last block of the stream
}

// Split says where a Writer's output starts and stops. Offsets are of the
// stream's input; the Writer's input starts at From.
type Split struct {
	// From is where the Writer's input starts: WarmStart of the cut (0
	// for a part that starts the stream).
	From int64
	// Cut is the input offset of the block boundary where output starts
	// (0: at the stream's beginning, no warm-up), CutBit the stream's bit
	// offset there. The Writer writes the stream's bytes from byte
	// CutBit/8 on; the low CutBit%8 bits of the first byte are zero.
	Cut    int64
	CutBit uint64
	// Stop, when ≥ 0, is the input offset of a (non-final) block boundary
	// where output stops: the last byte written holds the bits up to it,
	// and zero bits above them. The Writer needs input past Stop (the
	// engine looks ahead, SplitLookahead), which it reads and discards.
	Stop int64
	// Capture keeps the engine's state at the cut (CutState), to prove
	// the restart against the original engine's.
	Capture bool
}

// ErrSplit reports a Split a Writer cannot run.
var ErrSplit = errors.New("deflate: split not possible")

// Warm is a kind of warm-up: how far before a restart the engine starts.
// The values are stored in recipes: they are never reused or renumbered.
type Warm uint8

const (
	// Warm1 starts one window and 1 KiB before the cut (rounded down to a
	// window boundary): enough where the original made literals and short
	// matches (the end of a run of stored blocks over incompressible data).
	Warm1 Warm = 1
	// Warm2, Warm4 and Warm8 start 2, 4 and 8 windows (and 1 KiB) before:
	// long matches (level 1 to 3 over text, which inserts no strings
	// inside them) resynchronise the parse more slowly.
	Warm2 Warm = 2
	Warm4 Warm = 3
	Warm8 Warm = 4
)

// MaxWarm is the largest Warm value this release knows.
const MaxWarm = Warm8

// windows is how many windows before the cut the warm-up starts.
func (k Warm) windows() int64 {
	switch k {
	case Warm1:
		return 1
	case Warm2:
		return 2
	case Warm4:
		return 4
	}
	return 8
}

// WarmStart is the input offset from which an engine with p must be fed to
// restart at input offset x of the stream with a warm-up of kind k (0 for x
// near the beginning: the engine then runs as from the stream's start).
func WarmStart(p Params, x int64, k Warm) int64 {
	w := int64(1) << p.WindowBits
	s := (x - k.windows()*w - 1024) &^ (FeedChunk - 1)
	return max(s, 0)
}

// WarmReach is the furthest any warm-up with p starts before its cut.
func WarmReach(p Params) int64 {
	return Warm8.windows()<<p.WindowBits + 1024 + FeedChunk
}

// SetSplit makes w, before its first Write, write only the part of the
// stream that s names; its input must start at s.From of the stream's.
func (w *Writer) SetSplit(s Split) error {
	// A --rsyncable engine restarts like the others: its rolling sum
	// covers the last 4 KiB, which every warm-up feeds it again.
	p := w.Params()
	switch {
	case w.st != nil:
		return fmt.Errorf("%w: engine %v", ErrSplit, p)
	case w.in != 0:
		return fmt.Errorf("%w: input already written", ErrSplit)
	case s.From < 0 || s.Cut < s.From || (s.Stop >= 0 && s.Stop <= s.Cut):
		return fmt.Errorf("%w: from %d, cut %d, stop %d", ErrSplit, s.From, s.Cut, s.Stop)
	case s.Cut > 1<<50 || s.Stop > 1<<50:
		return fmt.Errorf("%w: offsets too large", ErrSplit)
	}
	c := w.c
	c.seg.base = s.From
	c.seg.stop = -1
	if s.Stop >= 0 {
		c.seg.stop = int(s.Stop - s.From)
	}
	if s.Cut > 0 {
		c.seg.warm, c.seg.cut, c.seg.cutBit = true, int(s.Cut-s.From), s.CutBit
		c.seg.capture = s.Capture
	}
	return nil
}

// OnBlockEnd makes w call fn at each block boundary it makes (on the
// goroutine that writes to w). Offsets are of the stream's input.
func (w *Writer) OnBlockEnd(fn func(BlockEnd)) {
	if w.c != nil && w.st == nil {
		w.c.seg.onBlock = fn
	}
}

// Stopped reports whether w reached the Stop of its Split (its output is
// then complete).
func (w *Writer) Stopped() bool { return w.c != nil && w.c.seg.stopped }

// Missed reports whether w can no longer make its Split's part: its
// warm-up passed the cut without a block boundary there, or a block ended
// past Stop (or the stream ended) without one at Stop.
func (w *Writer) Missed() bool {
	if w.c == nil || w.st != nil {
		return false
	}
	s := &w.c.seg
	return s.missed || (s.warm && w.c.strstart > s.cut)
}

// warmBlockEnd ends a block of the warm-up: nothing is written; at the
// cut, output starts at the cut's bit offset.
func (c *compressor) warmBlockEnd() {
	c.trees.initBlock()
	c.nsyms, c.nDist = 0, 0
	c.blockStart = c.strstart
	s := &c.seg
	switch {
	case c.strstart == s.cut:
		s.warm, s.cut = false, -1
		if s.capture {
			s.cutState = c.state(nil)
		}
		b := &c.bw
		b.out, b.acc = b.out[:0], 0
		b.nbits = uint(s.cutBit % 8)
		b.total = s.cutBit / 8
	case c.strstart > s.cut:
		s.missed = true
	}
}

// segBlockEnd follows a block written: it reports it and stops the
// output at the split's stop.
func (c *compressor) segBlockEnd(last, stored bool, n int) {
	s := &c.seg
	b := &c.bw
	if s.onBlock != nil && !s.stopped {
		s.onBlock(BlockEnd{Input: s.base + int64(c.strstart), Bit: b.total*8 + uint64(b.nbits),
			Stored: stored, StoredLen: n, Final: last})
	}
	if s.stop < 0 || s.stopped {
		return
	}
	if c.strstart == s.stop && !last {
		b.windup()
		s.stopped = true
		s.stopLen = len(b.out)
		return
	}
	if c.strstart > s.stop || last {
		s.missed = true
	}
}

// SplitLookahead is how much input past a Split's Stop a Writer with p
// must be given to reach the Stop: the engine reads ahead by up to two
// windows before it decides the last symbols of a block.
func SplitLookahead(p Params) int64 {
	return 2<<p.WindowBits + 2*maxMatch
}

// FeedChunk is the size of the pieces, aligned to multiples of it in the
// stream's input, in which engines that take part in splits are fed: the
// full engine whose state a restart is proved against and every restarted
// engine. With the same pieces from the warm-up's start on (WarmStart is a
// multiple of FeedChunk), an engine's state is a function of its input
// alone, so equal states at a cut mean equal output from there on.
const FeedChunk = 32 << 10

// State is a copy of what decides an engine's output after a block
// boundary: positions, the match state, the window and the live part of
// the hash chains (entries further back than a match can reach, which can
// never be used again, are left out). Take one with Writer.State in an
// OnBlockEnd callback.
type State struct {
	base                            int64
	strstart, lookahead, blockStart int
	matchLength, matchStart         int
	prevLength, prevMatch           int
	matchAvailable, eofile, started bool
	insert, stage                   int
	window                          []byte
	head, prev                      []uint16
	alive                           int // positions below it are dead
	wmask, hashMask                 int
}

// State returns a copy of w's engine state; call it only from an
// OnBlockEnd callback (or after a Split's cut, see CutState).
func (w *Writer) State() *State {
	if w.c == nil || w.st != nil {
		return nil
	}
	return w.c.state(nil)
}

// StateInto is State reusing the buffers of s (which may be nil).
func (w *Writer) StateInto(s *State) *State {
	if w.c == nil || w.st != nil {
		return nil
	}
	return w.c.state(s)
}

func (c *compressor) state(reuse *State) *State {
	var win []byte
	var head, prev []uint16
	if reuse != nil {
		win, head, prev = reuse.window[:0], reuse.head[:0], reuse.prev[:0]
	}
	s := &State{base: c.seg.base, strstart: c.strstart, lookahead: c.lookahead, blockStart: c.blockStart,
		matchLength: c.matchLength, prevLength: c.prevLength, matchAvailable: c.matchAvailable,
		eofile: c.eofile, started: c.started, insert: c.insert, stage: len(c.in),
		wmask: c.wMask, hashMask: int(c.hashMask)}
	if c.matchLength >= minMatch {
		s.matchStart = c.matchStart
	}
	if c.prevLength >= minMatch {
		s.prevMatch = c.prevMatch
	}
	s.window = append(win, c.window[:c.windowSize]...)
	s.head = append(head, c.head[:c.hashMask+1]...)
	s.prev = append(prev, c.prev[:c.wSize]...)
	// A candidate is used only if it is at most maxDist behind a later
	// position (and NIL, 0, never).
	s.alive = max(c.strstart-c.maxDist, 1)
	return s
}

// Equal reports whether engines in states s and o make the same output
// from here on, given the same input in the same pieces.
func (s *State) Equal(o *State) bool {
	if s == nil || o == nil {
		return false
	}
	if s.base != o.base || s.strstart != o.strstart || s.lookahead != o.lookahead || s.blockStart != o.blockStart ||
		s.matchLength != o.matchLength || s.matchStart != o.matchStart || s.prevLength != o.prevLength ||
		s.prevMatch != o.prevMatch || s.matchAvailable != o.matchAvailable || s.eofile != o.eofile ||
		s.started != o.started || s.insert != o.insert || s.stage != o.stage || s.wmask != o.wmask ||
		s.hashMask != o.hashMask || string(s.window) != string(o.window) {
		return false
	}
	return s.sameChains(o)
}

// sameChains walks every hash chain of both states side by side while its
// positions are alive: the chains any later match search can follow.
func (s *State) sameChains(o *State) bool {
	live := func(v uint16) int {
		if int(v) < s.alive {
			return 0
		}
		return int(v)
	}
	for h := range s.head {
		x, y := live(s.head[h]), live(o.head[h])
		for x != 0 || y != 0 {
			if x != y {
				return false
			}
			x, y = live(s.prev[x&s.wmask]), live(o.prev[y&o.wmask])
		}
	}
	return true
}

// CutState is the state of a Writer with a Split (and Capture set) at its
// cut, or nil before the cut.
func (w *Writer) CutState() *State {
	if w.c == nil {
		return nil
	}
	return w.c.seg.cutState
}

// WriteAligned writes p, which starts at input offset off of the stream,
// to w in the pieces of FeedChunk that end on multiples of it (a short
// last piece where p ends). It stops early, after a piece, once done
// reports true (done may be nil).
func WriteAligned(w *Writer, p []byte, off int64, done func() bool) error {
	for len(p) > 0 {
		k := min(int64(len(p)), FeedChunk-off%FeedChunk)
		if _, err := w.Write(p[:k]); err != nil {
			return err
		}
		p, off = p[k:], off+k
		if done != nil && done() {
			return nil
		}
	}
	return nil
}

// ProveRestart reports whether an engine with p restarted at cut with a
// warm-up of kind k reaches the state want, the original engine's at the
// cut (taken with Writer.State, that engine fed with WriteAligned): if it
// does, the restarted engine makes the original's output from the cut on.
// in is the stream's input from WarmStart(p, cut.Input, k) to at least
// cut.Input + SplitLookahead(p).
func ProveRestart(p Params, in []byte, cut BlockEnd, k Warm, want *State) (bool, error) {
	if p.Rsync != RsyncOff {
		// A State does not hold the --rsyncable rolling sum: equal
		// states would prove nothing. Such parts are verified by their
		// bits instead (recompress/ingestparts.go).
		return false, nil
	}
	from := WarmStart(p, cut.Input, k)
	w, err := NewWriter(discard{}, p)
	if err != nil {
		return false, err
	}
	if err := w.SetSplit(Split{From: from, Cut: cut.Input, CutBit: cut.Bit, Stop: -1, Capture: true}); err != nil {
		return false, err
	}
	done := func() bool { return w.CutState() != nil || w.Missed() }
	if err := WriteAligned(w, in, from, done); err != nil {
		return false, err
	}
	return w.CutState().Equal(want), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// AppendStoredBlocks appends to dst the stored blocks that runs list over
// data (which holds exactly their bytes), written from bit offset bit of a
// stream: the first byte appended holds zero bits below bit%8. final marks
// the last block as the stream's last.
func AppendStoredBlocks(dst []byte, bit uint64, runs []StoredRun, data []byte, final bool) ([]byte, error) {
	b := bitWriter{out: dst, nbits: uint(bit % 8)}
	for ri, r := range runs {
		for k := uint32(0); k < r.Count; k++ {
			if len(data) < int(r.Len) {
				return nil, fmt.Errorf("%w: stored blocks hold more than their data", ErrStoredLength)
			}
			b.storedBlock(data[:r.Len], final && ri == len(runs)-1 && k == r.Count-1)
			data = data[r.Len:]
		}
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the stored blocks", ErrStoredLength, len(data))
	}
	return b.out, nil
}
