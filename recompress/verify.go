package recompress

import (
	"bytes"
	"hash"
	"hash/crc32"
	"runtime"
	"sync"

	"github.com/larder/larder/recompress/deflate"
)

// verifier re-runs a member's engine in a goroutine of its own and
// compares its output with the original compressed bytes as both arrive.
// The reading side adds original bytes (addOrig) and decompressed content
// (feed); the engine's side adds what it makes. Once they differ, or the
// engine lags too far behind, the verifier has diverged: the reading side
// takes the unmatched original bytes (takeRest) and stores them verbatim.
type verifier struct {
	mu       sync.Mutex
	orig     []byte // original bytes not yet matched
	gen      []byte // engine bytes not yet matched
	exact    uint64 // bytes matched
	diverged bool
	taken    bool // the reading side took the unmatched bytes
	diff     byte // the bits that differ in the first byte that differs
	diffSet  bool

	engine *deflate.Writer
	work   chan *[]byte // content for the engine; closed at the member's end
	done   chan error
	err    error

	// The engine is fed in deflate.FeedChunk pieces aligned to the
	// content's offsets (what proving a restart needs): cur is the piece
	// being filled, fed the content passed on so far.
	cur  *[]byte
	fed  uint64
	plan *planner // nil: the member is not cut into parts
}

const (
	verifyQueue = 8        // content chunks in flight
	chunkCap    = 64 << 10 // their capacity
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkCap); return &b }}

func newVerifier(p deflate.Params) (*verifier, error) {
	v, err := newPlainVerifier(p)
	if err != nil {
		return nil, err
	}
	v.plan = newPlanner(p, v.engine)
	go v.run()
	return v, nil
}

// newHeadVerifier returns a verifier that plans no parts: the one that
// checks the first part of a member verified in parts (ingestparts.go)
// while it is read.
func newHeadVerifier(p deflate.Params) (*verifier, error) {
	v, err := newPlainVerifier(p)
	if err != nil {
		return nil, err
	}
	go v.run()
	return v, nil
}

func newPlainVerifier(p deflate.Params) (*verifier, error) {
	v := &verifier{work: make(chan *[]byte, verifyQueue), done: make(chan error, 1)}
	var err error
	if v.engine, err = deflate.NewWriter(v, p); err != nil {
		return nil, err
	}
	return v, nil
}

// run feeds the engine. An engine that refuses its input (a stored-block
// list shorter than the member) has diverged like one that makes other
// bytes: the member keeps what matched and stores the rest verbatim.
func (v *verifier) run() {
	var err error
	for b := range v.work {
		if err == nil && !v.isDiverged() {
			_, err = v.engine.Write(*b)
		}
		*b = (*b)[:0]
		chunkPool.Put(b)
	}
	if err == nil && !v.isDiverged() {
		err = v.engine.Close()
	}
	if err != nil {
		v.mu.Lock()
		v.diverged = true
		v.mu.Unlock()
	}
	v.done <- nil
}

func (v *verifier) isDiverged() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.diverged
}

// Write takes the engine's output.
func (v *verifier) Write(p []byte) (int, error) {
	v.mu.Lock()
	if !v.diverged {
		v.gen = append(v.gen, p...)
		v.match()
	}
	v.mu.Unlock()
	return len(p), nil
}

// addOrig takes original bytes the inflater consumed. It reports false
// once the verifier diverged (the bytes were not taken).
func (v *verifier) addOrig(p []byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.diverged {
		return false
	}
	v.orig = append(v.orig, p...)
	v.match()
	if !v.diverged && len(v.orig) > maxLag {
		v.diverged = true
	}
	return true
}

// feed passes content to the engine; it drops it once diverged.
func (v *verifier) feed(p []byte) {
	if v.isDiverged() {
		return
	}
	for len(p) > 0 {
		if v.cur == nil {
			v.cur = chunkPool.Get().(*[]byte)
			*v.cur = (*v.cur)[:0]
		}
		k := min(uint64(len(p)), deflate.FeedChunk-v.fed%deflate.FeedChunk)
		*v.cur = append(*v.cur, p[:k]...)
		v.fed += k
		p = p[k:]
		if v.fed%deflate.FeedChunk == 0 {
			v.work <- v.cur
			v.cur = nil
		}
	}
}

// finish waits for the engine to end and reports whether its stream
// matched the original exactly.
func (v *verifier) finish(abort bool) error {
	if abort {
		v.mu.Lock()
		v.diverged = true
		v.mu.Unlock()
	}
	if v.work != nil {
		if v.cur != nil {
			v.work <- v.cur
			v.cur = nil
		}
		close(v.work)
		v.err = <-v.done
		v.work = nil
	}
	v.mu.Lock()
	if !v.diverged && (len(v.orig) > 0 || len(v.gen) > 0) {
		v.diverged = true // the engine's stream is shorter or longer
	}
	v.mu.Unlock()
	return v.err
}

// takeRest hands the unmatched original bytes to the reading side once
// diverged; it returns nil, false while the engine still matches.
func (v *verifier) takeRest() ([]byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.diverged || v.taken {
		return nil, false
	}
	v.taken = true
	rest := v.orig
	v.orig, v.gen = nil, nil
	return rest, true
}

func (v *verifier) matched() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exact
}

// matchedBits reports whether the engine's stream matched the original's
// in its first n bits (the bits above them in the byte they end in may
// differ).
func (v *verifier) matchedBits(n uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.exact >= (n+7)/8:
		return true
	case v.exact == n/8 && n%8 != 0 && v.diverged:
		return v.diff&(byte(1)<<(n%8)-1) == 0 && v.diffSet
	}
	return false
}

// match compares what both sides have; the caller holds mu.
func (v *verifier) match() {
	n := min(len(v.orig), len(v.gen))
	if n == 0 || v.diverged {
		return
	}
	if !bytes.Equal(v.orig[:n], v.gen[:n]) {
		i := 0
		for v.orig[i] == v.gen[i] {
			i++
		}
		v.diff, v.diffSet = v.orig[i]^v.gen[i], true
		v.exact += uint64(i)
		v.orig = v.orig[i:]
		v.gen = nil
		v.diverged = true
		return
	}
	v.exact += uint64(n)
	v.orig = shift(v.orig, n)
	v.gen = shift(v.gen, n)
}

// shift drops the first n bytes, reusing the buffer.
func shift(b []byte, n int) []byte {
	if n == len(b) {
		return b[:0]
	}
	if n > cap(b)/2 {
		return append(b[:0], b[n:]...)
	}
	return b[n:]
}

// verifierSet verifies a member with every candidate Identify could not
// tell apart on the stream's head, side by side, each dropped at its first
// wrong byte. The first candidate (most likely) still matching at the end
// wins; when all have diverged, the last to diverge gives the exact prefix
// and the verbatim rest.
type verifierSet struct {
	vs     []*verifier
	params []deflate.Params
	taker  int // the verifier that took the latest original bytes

	// The content of the last ringKeep bytes or more, from ringFrom, for
	// proving restarts.
	ring     []byte
	ringFrom uint64
}

func newVerifierSet(ps []deflate.Params) (*verifierSet, error) {
	s := &verifierSet{params: ps}
	for _, p := range ps {
		v, err := newVerifier(p)
		if err != nil {
			// Abandon the engines started: aborted verifiers report no
			// error (their engines only write to memory), and err is
			// the one that matters.
			_ = s.finish(true)
			return nil, err
		}
		s.vs = append(s.vs, v)
	}
	return s, nil
}

// feed passes content to every engine still matching, and starts the
// proofs of restarts whose content has come.
func (s *verifierSet) feed(p []byte) {
	for _, v := range s.vs {
		v.feed(p)
	}
	s.ring = append(s.ring, p...)
	s.startProofs(false)
	if len(s.ring) > 2*ringKeep {
		k := len(s.ring) - ringKeep
		s.ring = append(s.ring[:0], s.ring[k:]...)
		s.ringFrom += uint64(k)
	}
}

// startProofs starts the proofs that are ready (final: all that can be,
// at the member's end) on the proof workers, each with a copy of the
// content it needs.
func (s *verifierSet) startProofs(final bool) {
	end := s.ringFrom + uint64(len(s.ring))
	for _, v := range s.vs {
		if v.plan == nil || v.isDiverged() {
			continue
		}
		for _, pr := range v.plan.ready(end, final) {
			from := max(s.ringFrom, uint64(deflate.WarmStart(v.plan.params, pr.cut.Input, deflate.MaxWarm)))
			to := min(end, alignUp(uint64(pr.cut.Input+deflate.SplitLookahead(v.plan.params))))
			if from >= to {
				continue
			}
			in := bytes.Clone(s.ring[from-s.ringFrom : to-s.ringFrom])
			v.plan.wg.Add(1)
			proofSlots <- struct{}{}
			go func() {
				defer func() { <-proofSlots }()
				v.plan.prove(pr, in, from)
			}()
		}
	}
}

// proofSlots bounds the proofs running at once, over every member being
// unpacked: one per core, as each holds a warm-up's content and state.
var proofSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// segments returns the parts of the winner's member (nil: one part).
func (s *verifierSet) segments(contentLen, exact uint64) []Segment {
	v := s.vs[s.winner()]
	if v.plan == nil {
		return nil
	}
	return v.plan.segments(contentLen, exact)
}

// addOrig takes original bytes; it reports false once every verifier
// has diverged.
func (s *verifierSet) addOrig(p []byte) bool {
	took := -1
	for i, v := range s.vs {
		if v.addOrig(p) {
			took = i
		}
	}
	if took < 0 {
		return false
	}
	s.taker = took
	// Candidates that diverged earlier can never be chosen: free what
	// they hold.
	for i, v := range s.vs {
		if i != took && v.isDiverged() {
			v.takeRest()
		}
	}
	return true
}

// alive returns the first verifier still matching, or -1.
func (s *verifierSet) alive() int {
	for i, v := range s.vs {
		if !v.isDiverged() {
			return i
		}
	}
	return -1
}

// winner is the verifier whose result the member records.
func (s *verifierSet) winner() int {
	if i := s.alive(); i >= 0 {
		return i
	}
	return s.taker
}

// takeRest hands over the unmatched original bytes once every verifier
// has diverged.
func (s *verifierSet) takeRest() ([]byte, bool) {
	if s.alive() >= 0 {
		return nil, false
	}
	return s.vs[s.taker].takeRest()
}

// finish waits for every engine; abort marks them all diverged. Then it
// starts the proofs left (the engines have made their last blocks).
func (s *verifierSet) finish(abort bool) error {
	var first error
	for _, v := range s.vs {
		if err := v.finish(abort); err != nil && first == nil {
			first = err
		}
	}
	s.startProofs(true)
	s.ring = nil
	return first
}

func (s *verifierSet) matched() uint64 { return s.vs[s.winner()].matched() }

func (s *verifierSet) winnerParams() deflate.Params { return s.params[s.winner()] }

// identified is the check of a member that deflate.Identify rebuilt whole
// from its head: the engine has already made every original byte, so no
// engine runs again. It only makes sure the member is what Identify saw:
// the inflater consumes exactly those deflate bytes and decodes the same
// content (length and CRC-32). Anything else makes the member partial
// from byte 0, its deflate bytes kept as they are.
type identified struct {
	params deflate.Params
	stream []byte // the deflate stream Identify rebuilt (a copy)
	n      int    // of which the inflater consumed
	size   int
	crc    hash.Hash32
	want   deflate.Result
	failed bool
	taken  bool
}

func newIdentified(res deflate.Result, stream []byte) *identified {
	return &identified{params: res.Params, stream: bytes.Clone(stream[:res.Verified]),
		crc: crc32.NewIEEE(), want: res}
}

func (k *identified) feed(p []byte) {
	k.size += len(p)
	k.crc.Write(p)
}

func (k *identified) addOrig(p []byte) bool {
	if k.failed {
		return false
	}
	if len(p) > len(k.stream)-k.n || !bytes.Equal(p, k.stream[k.n:k.n+len(p)]) {
		k.failed = true
		return false
	}
	k.n += len(p)
	return true
}

func (k *identified) takeRest() ([]byte, bool) {
	if !k.failed || k.taken {
		return nil, false
	}
	k.taken = true
	return k.stream[:k.n], true
}

func (k *identified) finish(abort bool) error {
	if abort || k.n != len(k.stream) || k.size != k.want.ContentLen || k.crc.Sum32() != k.want.ContentCRC {
		k.failed = true
	}
	return nil
}

func (k *identified) matched() uint64 {
	if k.failed {
		return 0
	}
	return uint64(len(k.stream))
}

func (k *identified) winnerParams() deflate.Params { return k.params }

// segments: one part from the stream's start (restore runs the engine
// whole).
func (k *identified) segments(contentLen, exact uint64) []Segment { return nil }
