package recompress

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// A tar of many small gzip files (the 2026 Discourse format: one
// NNNN.dat.gz per table, most of them one part long) would be rebuilt one
// entry after another, the walker waiting for each entry's engine: one
// core busy. So the walker rebuilds consecutive entries side by side,
// each on its own goroutine, and their output is written in order:
//
//   - The walker still does every read, in the order of the recipe: for a
//     small entry (at most jobInput bytes of streams) it reads what the
//     entry takes from each stream into memory and starts a job that
//     rebuilds the entry from those bytes, in a packer of its own (its
//     memberWriter, engines and errors are those of a sequential pack). An
//     entry that reads more (a member in parts, a big nested layer) is
//     rebuilt on the walker, reading and streaming as before, while the
//     jobs before it finish.
//   - Each entry (skeleton bytes before it, then its gzip layer) writes into
//     its own slot; one goroutine writes the slots to the tar's writer in
//     order, each as soon as the ones before it are written.
//   - Memory is bounded: at most jobs entries are in flight, and the bytes
//     they hold (the input read for them and the output waiting in their
//     slots) stay under held, except that the slot being written may
//     buffer head bytes more, so that it never waits for the others.
//
// Only a tar whose output Pack may write from another goroutine, after
// reading ahead, is rebuilt so: the root or a layer under gzip members
// without verbatim tails (writing into a member with a tail would read the
// tail there, at a point of the streams the walker has passed). Tars
// inside an entry are rebuilt in order, within its job.

// tarLimits bound the rebuild of one tar's entries side by side.
type tarLimits struct {
	jobs     int    // entries in flight: being rebuilt, or waiting to be written
	jobInput uint64 // stream bytes an entry may take to be a job
	held     uint64 // input and buffered output of the entries in flight
	head     uint64 // output the entry being written may buffer beyond held
}

// Default limits of tar entries side by side.
const (
	// maxJobInput: a 2026 table file of one part holds at most a little
	// over 2 MiB of content; bigger entries are rebuilt as they stream.
	maxJobInput = 4 << 20
	// maxTarHeld bounds the input and output held for entries in flight.
	maxTarHeld = 16 << 20
	// maxHeadBuffer bounds the output the entry being written buffers.
	maxHeadBuffer = 1 << 20
	// slotChunk is the piece a slot buffers output in.
	slotChunk = 64 << 10
)

// tarLimitsFor returns the limits of a tar's entries side by side: a
// test's, or one entry more than the packer has workers, and the defaults.
func tarLimitsFor(workers int, hooks *packHooks) tarLimits {
	if hooks != nil && hooks.tar.jobs > 0 {
		return hooks.tar
	}
	return tarLimits{jobs: workers + 1, jobInput: maxJobInput, held: maxTarHeld, head: maxHeadBuffer}
}

// packHooks let tests watch a pack and shrink its limits; Pack has none.
type packHooks struct {
	tar        tarLimits         // used when tar.jobs > 0
	engineBusy func(delta int)   // an engine begins (+1) or ends (-1) deflating a piece
	held       func(delta int64) // the bytes a tar's entries in flight hold change
}

// jobTars returns the tar layers whose entries are rebuilt side by side:
// those reached from the root through gzip layers whose members have no
// verbatim tail, with at least two entries small enough to be jobs.
func jobTars(n Node, jobInput uint64, out map[*Tar]bool) {
	switch n := n.(type) {
	case *Gzip:
		for i := range n.Members {
			if n.Members[i].Tail > 0 {
				return
			}
		}
		if n.Content != nil {
			jobTars(n.Content, jobInput, out)
		}
	case *Tar:
		small := 0
		for i := range n.Parts {
			if _, ok := entryUse(n, &n.Parts[i], jobInput); ok {
				small++
			}
		}
		if small >= 2 {
			out[n] = true
		}
	}
}

// streamBytes is what an entry takes from one stream.
type streamBytes struct {
	stream int
	n      uint64
	r      *bytes.Reader // the bytes read ahead, for the job
}

// entryUse returns the bytes entry part of tar t takes from each stream,
// in the order it first reads them, and whether they total at most limit.
func entryUse(t *Tar, part *TarPart, limit uint64) ([]streamBytes, bool) {
	u := &useCounter{limit: limit}
	u.add(t.Skeleton, part.Skip)
	u.node(part.Child)
	return u.use, !u.over
}

type useCounter struct {
	use   []streamBytes
	total uint64
	limit uint64
	over  bool
}

func (u *useCounter) add(stream int, n uint64) {
	if n == 0 || u.over {
		return
	}
	if n > u.limit-u.total {
		u.over = true
		return
	}
	u.total += n
	for i := range u.use {
		if u.use[i].stream == stream {
			u.use[i].n += n
			return
		}
	}
	u.use = append(u.use, streamBytes{stream: stream, n: n})
}

// node adds what n reads from each stream. Within a stream the order is
// Pack's; between streams it does not matter, each is read on its own.
func (u *useCounter) node(n Node) {
	switch n := n.(type) {
	case *Copy:
		u.add(n.Stream, n.Len)
	case *Gzip:
		if n.Content != nil {
			u.node(n.Content)
		}
		for i := range n.Members {
			u.add(n.Verbatim, n.Members[i].Tail)
		}
		u.add(n.Verbatim, n.Trailing)
	case *Tar:
		for i := range n.Parts {
			u.add(n.Skeleton, n.Parts[i].Skip)
			u.node(n.Parts[i].Child)
		}
		u.add(n.Skeleton, n.Rest)
	}
}

// tarJobs writes tar layer n to w, its entries rebuilt side by side.
func (p *packer) tarJobs(n *Tar, w io.Writer) error {
	q := &tarQueue{p: p, w: w, lim: p.tarLim, drained: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	if p.hooks != nil {
		q.hook = p.hooks.held
	}
	go q.drain()
	if err := q.walk(n); err != nil {
		q.fail(err)
	}
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	<-q.drained
	q.jobs.Wait()
	if err := q.failed(); err != nil {
		return err
	}
	return p.copyN(w, n.Skeleton, n.Rest)
}

// tarQueue holds the entries of a tar in flight, in order, and writes
// their output. mu guards everything but w, which only the drain
// goroutine writes while the walk runs.
type tarQueue struct {
	p       *packer
	w       io.Writer
	lim     tarLimits
	mu      sync.Mutex
	cond    *sync.Cond // any change: output, an entry done, a slot written, an error
	slots   []*tarSlot // in flight, in order; the first is being written
	held    uint64     // input and output held by the slots
	closed  bool       // the walk has queued its last entry
	err     error      // the first error; it stops everything
	jobs    sync.WaitGroup
	drained chan struct{} // closed when drain returns
	hook    func(int64)
}

// tarSlot is one entry in flight: the output it has made that is not yet
// written, and the input read ahead for it.
type tarSlot struct {
	q      *tarQueue
	chunks []*outChunk
	n      uint64  // bytes in chunks
	in     uint64  // input held until the job ends
	done   bool    // the entry is rebuilt (or failed)
	sub    *packer // the job's packer, nil for an entry rebuilt on the walker
}

type outChunk struct {
	b *[64 << 10]byte
	n int
}

// walk queues the entries of n in order, reading ahead for the small ones.
func (q *tarQueue) walk(n *Tar) error {
	p := q.p
	for i := range n.Parts {
		part := &n.Parts[i]
		use, small := entryUse(n, part, q.lim.jobInput)
		var in uint64
		if small {
			for _, u := range use {
				in += u.n
			}
		}
		s, err := q.reserve(in)
		if err != nil {
			return err
		}
		if !small {
			// On the walker, as in a sequential pack: its reads come
			// after those of the jobs before it and before the next.
			err := p.entry(n.Skeleton, part, s)
			q.finish(s, err)
			if err != nil {
				return err
			}
			continue
		}
		for j := range use {
			b := bytes.NewBuffer(make([]byte, 0, use[j].n))
			if err := p.copyN(b, use[j].stream, use[j].n); err != nil {
				q.finish(s, err)
				return err
			}
			use[j].r = bytes.NewReader(b.Bytes())
		}
		q.start(s, n.Skeleton, part, use)
	}
	return nil
}

// reserve waits for room for an entry holding in bytes of input and
// queues its slot.
func (q *tarQueue) reserve(in uint64) (*tarSlot, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && len(q.slots) > 0 && (len(q.slots) >= q.lim.jobs || q.held+in > q.lim.held) {
		q.cond.Wait()
	}
	if q.err != nil {
		return nil, errAborted
	}
	s := &tarSlot{q: q, in: in}
	q.slots = append(q.slots, s)
	q.addHeld(int64(in))
	q.cond.Broadcast()
	return s, nil
}

// start runs a job that rebuilds an entry from the bytes read for it.
func (q *tarQueue) start(s *tarSlot, skeleton int, part *TarPart, use []streamBytes) {
	p := q.p
	sub := &packer{ctx: p.ctx, rc: p.rc, readers: make([]io.Reader, len(p.rc.Streams)), sem: p.sem, hooks: p.hooks}
	sub.open = func(i int, _ Kind) (io.Reader, error) {
		for _, u := range use {
			if u.stream == i {
				return u.r, nil
			}
		}
		return nil, fmt.Errorf("tar member %s: stream %d was not read ahead", part.Name, i)
	}
	q.mu.Lock()
	s.sub = sub
	stopped := q.err != nil
	q.mu.Unlock()
	if stopped {
		sub.abortEngines()
	}
	q.jobs.Add(1)
	go func() {
		defer q.jobs.Done()
		err := sub.entry(skeleton, part, s)
		sub.stopEngines()
		for _, u := range use {
			if err == nil && u.r.Len() != 0 {
				err = fmt.Errorf("%w: tar member %s left %d bytes of stream %d", ErrPack, part.Name, u.r.Len(), u.stream)
			}
		}
		q.finish(s, err)
	}()
}

// finish marks an entry rebuilt, or failed with err, and lets go of its
// input.
func (q *tarQueue) finish(s *tarSlot, err error) {
	q.mu.Lock()
	s.done = true
	q.addHeld(-int64(s.in))
	s.in = 0
	q.cond.Broadcast()
	q.mu.Unlock()
	if err != nil {
		q.fail(err)
	}
}

// fail keeps the first error and stops every entry in flight: their
// writes, waits and engines return errAborted from now on.
func (q *tarQueue) fail(err error) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return
	}
	q.err = err
	var subs []*packer
	for _, s := range q.slots {
		if s.sub != nil {
			subs = append(subs, s.sub)
		}
	}
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, sub := range subs {
		sub.abortEngines()
	}
}

func (q *tarQueue) failed() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// addHeld changes the bytes held; the caller holds mu.
func (q *tarQueue) addHeld(d int64) {
	if d == 0 {
		return
	}
	q.held = uint64(int64(q.held) + d)
	if q.hook != nil {
		q.hook(d)
	}
}

// Write buffers an entry's output until the drain goroutine writes it. The
// entry being written may buffer up to its head limit, the others wait
// while the entries in flight hold their limit.
func (s *tarSlot) Write(b []byte) (int, error) {
	q := s.q
	n := len(b)
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(b) > 0 {
		k := min(len(b), slotChunk)
		for q.err == nil && !q.room(s, uint64(k)) {
			q.cond.Wait()
		}
		if q.err != nil {
			return n - len(b), errAborted
		}
		for k > 0 {
			var c *outChunk
			if last := len(s.chunks) - 1; last >= 0 && s.chunks[last].n < len(s.chunks[last].b) {
				c = s.chunks[last]
			} else {
				c = &outChunk{b: copyBufs.Get().(*[64 << 10]byte)}
				s.chunks = append(s.chunks, c)
			}
			m := copy(c.b[c.n:], b[:k])
			c.n += m
			s.n += uint64(m)
			q.addHeld(int64(m))
			b, k = b[m:], k-m
		}
		q.cond.Broadcast()
	}
	return n, nil
}

// room reports whether slot s may buffer k more bytes; the caller holds mu.
func (q *tarQueue) room(s *tarSlot, k uint64) bool {
	if s == q.slots[0] {
		return s.n == 0 || s.n+k <= q.lim.head
	}
	return q.held+k <= q.lim.held
}

// drain writes the slots' output to w in order, until the walk has
// queued its last entry and every slot is written, or an error.
func (q *tarQueue) drain() {
	defer close(q.drained)
	q.mu.Lock()
	for {
		for q.err == nil && !q.closed && len(q.slots) == 0 {
			q.cond.Wait()
		}
		if q.err != nil || len(q.slots) == 0 {
			break
		}
		s := q.slots[0]
		for q.err == nil && len(s.chunks) == 0 && !s.done {
			q.cond.Wait()
		}
		if q.err != nil {
			break
		}
		if len(s.chunks) == 0 {
			// Written whole: the next entry is the head.
			q.slots[0] = nil
			q.slots = q.slots[1:]
			q.cond.Broadcast()
			continue
		}
		chunks := s.chunks
		s.chunks = nil
		q.mu.Unlock()
		var err error
		var written uint64
		for _, c := range chunks {
			if err == nil {
				_, err = q.w.Write(c.b[:c.n])
			}
			written += uint64(c.n)
			copyBufs.Put(c.b)
		}
		if err != nil {
			q.fail(err)
			q.mu.Lock()
			break
		}
		q.mu.Lock()
		s.n -= written
		q.addHeld(-int64(written))
		q.cond.Broadcast()
	}
	// After an error the output is left unwritten.
	for _, s := range q.slots {
		for _, c := range s.chunks {
			copyBufs.Put(c.b)
		}
		q.addHeld(-int64(s.n))
		s.chunks, s.n = nil, 0
	}
	q.mu.Unlock()
}
