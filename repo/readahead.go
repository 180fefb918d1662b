package repo

import (
	"context"
	"slices"
	"sync"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"
)

// readAhead fetches, a few at a time, the sealed bytes of the frames (or
// unframed blobs) a stream reads next, so that a restore from remote
// storage waits for its round trips side by side rather than one after
// another, and in fewer of them: ranges of one pack that follow each other
// (within maxReadAheadGap) are fetched with one request. It only supplies
// bytes: the blobReader opens and checks them as if it had fetched them
// itself (the range is the same: pack, offset, length), and fetches
// anything else directly (another copy when the first is not intact, a
// frame it no longer holds). A failed fetch of one range is the error the
// direct fetch would have had, and is handled as that; when a fetch of
// several fails, the blobReader fetches each range itself (one false claim
// must not spoil its neighbours; storage that is down costs one more round
// of retries before the stream fails).
//
// The stream's entries wait in a window, oldest first, until the reader
// takes them: the window holds at most maxReadAheadEntries entries and
// readAheadPerFetch*n ranges of at most maxReadAheadBytes in all (claimed
// lengths, plus the gaps fetched between them; a claim larger than that is
// not read ahead). At most n fetches run at once (the backend's Limit
// bounds the operations of every window together). The window is used by
// one goroutine (the stream's); the fetches run on others and start each
// other.
type readAhead struct {
	ctx    context.Context
	cancel context.CancelFunc
	br     *blobReader
	t      pack.BlobType
	n      int // fetches at once
	wg     sync.WaitGroup

	window []aheadEntry
	// pending are list chunks the walk will load after the window's
	// (queue); the first len(looked) of them have their copies looked up
	// (in lookBuf, reused).
	pending []ID
	looked  [][]blobCopy
	lookBuf [][]blobCopy

	mu      sync.Mutex
	fetches map[rangeKey]*aheadRange // the window's ranges
	order   []*aheadRange            // the same, oldest first
	queued  []*aheadRange            // not started yet, oldest first
	running int
	bytes   int // claimed bytes of the window's ranges
}

// Bounds of a stream's read ahead. The ranges in the window are 8 per
// fetch that runs at once; a range is fetched once it is among the oldest
// 2 per fetch (enough that it is ready when the reader wants it), the
// younger wait so that their neighbours in the pack can join them.
const (
	maxReadAheadBytes   = 8 << 20
	maxReadAheadEntries = 4096
	readAheadPerFetch   = 8
	readAheadDue        = 2
	// maxReadAheadGap is the most bytes between two ranges of a pack that
	// one fetch reads over (list chunks and other streams' frames lie
	// between a stream's frames).
	maxReadAheadGap = 64 << 10
)

// lookupBatch is how many chunks' copies a read ahead looks up in the
// cache at once (localCache.CopiesMany: one read transaction), ahead of
// their place in the window.
const lookupBatch = 256

// rangeKey names a range of a pack.
type rangeKey struct {
	pack           ID
	offset, length uint32
}

func (k rangeKey) end() uint64 { return uint64(k.offset) + uint64(k.length) }

type aheadEntry struct {
	e      listEntry
	copies []blobCopy // as the cache has them: the reader's load takes them
	key    rangeKey
	has    bool // key is read ahead
}

// aheadRange is a range of the window. Its fields are the window's (under
// mu) but buf, err and own, which its fetch sets before done closes.
type aheadRange struct {
	key     rangeKey
	refs    int  // window entries that need it
	started bool // its fetch began
	wanted  bool // the reader waits for it, or took it
	gone    bool // left the window before its fetch started
	done    chan struct{}
	buf     []byte
	err     error
	own     bool // the reader fetches it itself (a fetch of several failed)
}

// newReadAhead returns the read ahead of the blobs of type t that br
// reads, running at most n fetches at once; stop ends it.
func newReadAhead(ctx context.Context, br *blobReader, t pack.BlobType, n int) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{ctx: ctx, cancel: cancel, br: br, t: t, n: n, fetches: map[rangeKey]*aheadRange{}}
	br.ahead = ra
	return ra
}

// lookup returns the copies of chunks as the cache has them, one slice
// per ID, in one read transaction. A cache that cannot be read leaves the
// copies nil: the load asks it again and reports the error then. dst is
// reused.
func (ra *readAhead) lookup(ids []ID, dst [][]blobCopy) [][]blobCopy {
	dst = slices.Grow(dst[:0], len(ids))[:len(ids)]
	clear(dst)
	_ = ra.br.cache.CopiesMany(ids, dst) // nil copies: see above
	return dst
}

// entry returns e as the window holds it, with its copies (lookup) and
// the range the reader will fetch for its chunk: its first copy (the one
// blobReader.load tries first), unless the reader holds that frame already
// or its claimed length is too large to read ahead.
func (ra *readAhead) entry(e listEntry, copies []blobCopy) aheadEntry {
	ae := aheadEntry{e: e, copies: copies}
	for _, c := range ae.copies {
		if c.Type != ra.t {
			continue
		}
		if c.Framed && ra.br.cachedFrame(c.Pack, c.Offset) != nil || c.Length == 0 || c.Length > maxReadAheadBytes {
			break
		}
		ae.key, ae.has = rangeKey{c.Pack, c.Offset, c.Length}, true
		break
	}
	return ae
}

// full reports whether the window must give its oldest entry to the reader
// before ae joins it. An empty window is never full.
func (ra *readAhead) full(ae aheadEntry) bool {
	switch {
	case len(ra.window) == 0:
		return false
	case len(ra.window) >= maxReadAheadEntries:
		return true
	case !ae.has:
		return false
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.fetches[ae.key] != nil {
		return false
	}
	return len(ra.fetches) >= ra.n*readAheadPerFetch || ra.bytes+int(ae.key.length) > maxReadAheadBytes
}

// len is the number of entries in the window.
func (ra *readAhead) len() int { return len(ra.window) }

// push adds an entry (from entry) to the window, fetching its range if it
// is new.
func (ra *readAhead) push(ae aheadEntry) {
	ra.window = append(ra.window, ae)
	if !ae.has {
		return
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if f := ra.fetches[ae.key]; f != nil {
		f.refs++
		return
	}
	f := &aheadRange{key: ae.key, refs: 1, done: make(chan struct{})}
	ra.fetches[ae.key] = f
	ra.order = append(ra.order, f)
	ra.queued = append(ra.queued, f)
	ra.bytes += int(ae.key.length)
	ra.startLocked()
}

// startLocked starts fetches while fewer than n run: each takes the oldest
// range not started and the others of the window in its pack that follow
// it or it follows, one after another within maxReadAheadGap. Called with
// mu held.
func (ra *readAhead) startLocked() {
	ra.queued = slices.DeleteFunc(ra.queued, func(f *aheadRange) bool { return f.gone })
	if err := ra.ctx.Err(); err != nil {
		// Stopped: what waits ends now (nothing more starts).
		for _, f := range ra.queued {
			f.started, f.err = true, err
			close(f.done)
		}
		ra.queued = nil
		return
	}
	for ra.running < ra.n && len(ra.queued) > 0 {
		if !ra.dueLocked(ra.queued[0]) {
			return
		}
		run := []*aheadRange{ra.queued[0]}
		start, end := uint64(run[0].key.offset), run[0].key.end()
		for grew := true; grew; {
			grew = false
			for _, f := range ra.queued[1:] {
				k := f.key
				if k.pack != run[0].key.pack || slices.Contains(run, f) {
					continue
				}
				// It follows the run (or overlaps it), or the run follows
				// it, and the run stays within the window's bytes.
				near := uint64(k.offset) >= start && uint64(k.offset) <= end+maxReadAheadGap ||
					uint64(k.offset) < start && k.end()+maxReadAheadGap >= start
				ns, ne := min(start, uint64(k.offset)), max(end, k.end())
				if near && ne-ns <= maxReadAheadBytes {
					run = append(run, f)
					start, end = ns, ne
					grew = true
				}
			}
		}
		for _, f := range run {
			f.started = true
		}
		ra.queued = slices.DeleteFunc(ra.queued, func(f *aheadRange) bool { return f.started })
		ra.running++
		ra.wg.Add(1)
		go ra.fetch(run, start, end)
	}
}

// dueLocked reports whether a range is to be fetched now: the reader
// waits for it, or fewer than readAheadDue*n ranges the reader has not
// wanted yet come before it. Called with mu held.
func (ra *readAhead) dueLocked(f *aheadRange) bool {
	if f.wanted {
		return true
	}
	before := 0
	for _, o := range ra.order {
		if o == f {
			return true
		}
		if !o.wanted {
			if before++; before >= ra.n*readAheadDue {
				return false
			}
		}
	}
	return true
}

// fetch reads the bytes start to end of a pack for the ranges of run.
func (ra *readAhead) fetch(run []*aheadRange, start, end uint64) {
	defer ra.wg.Done()
	h := backend.Handle{Type: backend.TypeData, Name: run[0].key.pack.String()}
	buf, err := loadRange(ra.ctx, ra.br.r.be, h, int64(start), int64(end-start))
	for _, f := range run {
		switch {
		case err == nil:
			off := uint64(f.key.offset) - start
			f.buf = buf[off : off+uint64(f.key.length) : off+uint64(f.key.length)]
		case len(run) > 1:
			f.own = true
		default:
			f.err = err
		}
		close(f.done)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.running--
	ra.startLocked()
}

// pop takes the oldest entry of the window; the reader calls done with it
// once it has read its chunk.
func (ra *readAhead) pop() (aheadEntry, bool) {
	if len(ra.window) == 0 {
		return aheadEntry{}, false
	}
	ae := ra.window[0]
	ra.window[0] = aheadEntry{}
	ra.window = ra.window[1:]
	return ae, true
}

// done releases an entry's range; the last entry that needs it frees it.
func (ra *readAhead) done(ae aheadEntry) {
	if !ae.has {
		return
	}
	ra.mu.Lock()
	f := ra.fetches[ae.key]
	if f == nil || f.refs > 1 {
		if f != nil {
			f.refs--
		}
		ra.mu.Unlock()
		return
	}
	started := f.started
	if !started {
		f.gone = true
	}
	ra.mu.Unlock()
	if started {
		// Wait for a fetch the reader did not need (it held the frame by
		// then): what the window holds stays within its bounds.
		<-f.done
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	delete(ra.fetches, ae.key)
	ra.order = slices.DeleteFunc(ra.order, func(o *aheadRange) bool { return o == f })
	ra.bytes -= int(ae.key.length)
	ra.startLocked() // a younger range may be due now
}

// take returns the fetch of a range of the window, waiting for it, or nil
// when the reader is to fetch it itself (also for a nil read ahead). The
// buffer stays the read ahead's: the caller must not keep it.
func (ra *readAhead) take(key rangeKey) *aheadRange {
	if ra == nil {
		return nil
	}
	ra.mu.Lock()
	f := ra.fetches[key]
	if f != nil && !f.wanted {
		f.wanted = true
		if !f.started {
			// It is due now: started at once or when a fetch ends (every
			// fetch starts the next ones).
			ra.queued = slices.DeleteFunc(ra.queued, func(o *aheadRange) bool { return o == f })
			ra.queued = slices.Insert(ra.queued, 0, f)
			ra.startLocked()
		}
	}
	ra.mu.Unlock()
	if f == nil {
		return nil
	}
	<-f.done
	if f.own {
		return nil
	}
	return f
}

// queue is the walk's news (walkTreeAhead) of the list chunks it loads
// next, in order: the window takes what it can hold, the rest waits.
func (ra *readAhead) queue(ids []ID) {
	for {
		ae, ok := ra.pop()
		if !ok {
			break
		}
		ra.done(ae) // a walk that did not load them (it cannot happen)
	}
	ra.pending, ra.looked = ids, nil
	ra.fill()
}

// loaded is the walk's news that it loaded list chunk id: the window gives
// it up and takes the next pending ones. A nil read ahead does nothing.
func (ra *readAhead) loaded(id ID) {
	if ra == nil {
		return
	}
	if len(ra.window) > 0 && ra.window[0].e.ID == id {
		ae, _ := ra.pop()
		ra.done(ae)
	}
	ra.fill()
}

// fill moves pending list chunks into the window while it has room,
// looking up their copies lookupBatch at a time.
func (ra *readAhead) fill() {
	for len(ra.pending) > 0 {
		if len(ra.looked) == 0 {
			ra.lookBuf = ra.lookup(ra.pending[:min(len(ra.pending), lookupBatch)], ra.lookBuf)
			ra.looked = ra.lookBuf
		}
		ae := ra.entry(listEntry{ID: ra.pending[0]}, ra.looked[0])
		if ra.full(ae) {
			return
		}
		ra.push(ae)
		ra.pending = ra.pending[1:]
		ra.looked[0] = nil
		ra.looked = ra.looked[1:]
	}
}

// stop ends the fetches still running and waits for them.
func (ra *readAhead) stop() {
	ra.cancel()
	ra.wg.Wait()
	ra.br.ahead = nil
	ra.window, ra.pending, ra.looked, ra.lookBuf = nil, nil, nil, nil
	ra.mu.Lock()
	ra.fetches, ra.order, ra.queued = nil, nil, nil
	ra.mu.Unlock()
}
