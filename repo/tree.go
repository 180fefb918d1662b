package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// A stream's chunk list is stored as a tree of list chunks (BlobList),
// so that a night's snapshot costs about what changed, not the stream's
// size (docs/FORMAT.md, "Chunk lists"):
//
//   - level 0 list chunks hold entries of 36 bytes: a data chunk's ID and
//     its length (uint32 LE);
//   - level n > 0 list chunks hold entries of 40 bytes: a level n-1 list
//     chunk's ID and the stream bytes under it (uint64 LE).
//
// A list chunk ends after an entry whose ID's last byte is below
// listCutBelow (content-defined: an unchanged run of entries gives the same
// list chunks night after night) or at listMaxEntries entries. The
// snapshot keeps the single top chunk's ID and the depth (levels).
const (
	listCutBelow   = 2 // of 256: about 128 entries a list chunk
	listMaxEntries = 1024
	entry0Size     = 32 + 4
	entryNSize     = 32 + 8
)

// storeFunc stores a list chunk and returns its ID.
type storeFunc func(ctx context.Context, data []byte) (ID, error)

// treeBuilder builds a chunk list tree as entries arrive; memory is one
// list chunk per level.
type treeBuilder struct {
	store  storeFunc
	levels []*listLevel
}

type listLevel struct {
	buf     []byte
	n       int    // entries in buf
	covered uint64 // stream bytes under buf's entries
	cuts    int    // chunks stored from this level
}

func newTreeBuilder(store storeFunc) *treeBuilder { return &treeBuilder{store: store} }

// Add appends a data chunk of n bytes.
func (t *treeBuilder) Add(ctx context.Context, id ID, n uint32) error {
	return t.add(ctx, 0, id, uint64(n))
}

func (t *treeBuilder) add(ctx context.Context, level int, id ID, covered uint64) error {
	for len(t.levels) <= level {
		t.levels = append(t.levels, &listLevel{})
	}
	l := t.levels[level]
	l.buf = append(l.buf, id[:]...)
	if level == 0 {
		l.buf = binary.LittleEndian.AppendUint32(l.buf, uint32(covered))
	} else {
		l.buf = binary.LittleEndian.AppendUint64(l.buf, covered)
	}
	l.n++
	l.covered += covered
	if id[31] < listCutBelow || l.n >= listMaxEntries {
		return t.cut(ctx, level)
	}
	return nil
}

// cut stores the level's buffered entries as a list chunk and adds it to
// the level above.
func (t *treeBuilder) cut(ctx context.Context, level int) error {
	l := t.levels[level]
	if l.n == 0 {
		return nil
	}
	id, err := t.store(ctx, l.buf)
	if err != nil {
		return err
	}
	covered := l.covered
	l.buf, l.n, l.covered = l.buf[:0], 0, 0
	l.cuts++
	return t.add(ctx, level+1, id, covered)
}

// Finish stores what is buffered and returns the tree's depth and root;
// depth 0 means an empty stream.
func (t *treeBuilder) Finish(ctx context.Context) (uint8, ID, error) {
	if len(t.levels) == 0 {
		return 0, ID{}, nil
	}
	for level := 0; ; level++ {
		if level > 250 {
			return 0, ID{}, fmt.Errorf("chunk list tree too deep")
		}
		if level > 0 {
			l := t.levels[level]
			// A level that received one list chunk in all holds the root.
			if l.cuts == 0 && l.n == 1 {
				var root ID
				copy(root[:], l.buf[:32])
				return uint8(level), root, nil
			}
		}
		if err := t.cut(ctx, level); err != nil {
			return 0, ID{}, err
		}
	}
}

// listEntry is a data chunk of a stream.
type listEntry struct {
	ID  ID
	Len uint32
}

// errSkipSubtree, returned by a walk's load function, says that the list
// chunk's subtree was walked before (trees of one repository share
// subtrees): the walk takes the bytes its parent says it covers and does
// not descend.
var errSkipSubtree = errors.New("subtree walked already")

// anyLength, as the length of walkTree, checks the byte counts of the
// tree's levels against each other but not their total.
const anyLength = ^uint64(0)

// walkTree calls fn for every data chunk of a tree, in order; length is
// the stream's length. load returns a list chunk's bytes (or
// errSkipSubtree). Every chunk and every list entry must cover at least a
// byte, and each list entry exactly the bytes of its subtree, so the work
// of a walk is bounded by the stream's length, whatever the tree's writer
// put in it.
func walkTree(ctx context.Context, depth uint8, root ID, length uint64, load func(ID) ([]byte, error), fn func(listEntry) error) error {
	return walkTreeAhead(ctx, depth, root, length, load, nil, fn)
}

// walkTreeAhead is walkTree that first tells ahead (when not nil) the
// level 1 list chunks under each level 2 list chunk: the walk loads them
// next, in that order, and nothing else between (OpenStream fetches them
// ahead).
func walkTreeAhead(ctx context.Context, depth uint8, root ID, length uint64, load func(ID) ([]byte, error), ahead func([]ID), fn func(listEntry) error) error {
	if depth == 0 {
		if length != 0 && length != anyLength {
			return fmt.Errorf("%w: an empty tree for a stream of %d bytes", ErrCorrupt, length)
		}
		return nil
	}
	n, err := walkNode(ctx, depth, root, length, load, ahead, fn)
	if errors.Is(err, errSkipSubtree) {
		return nil
	}
	if err != nil {
		return err
	}
	if length != anyLength && n != length {
		return fmt.Errorf("%w: the tree of list chunk %s covers %d bytes, the stream has %d", ErrCorrupt, root.Short(), n, length)
	}
	return nil
}

// walkNode walks the subtree of list chunk id, at most budget bytes of
// stream, and returns the bytes it covers.
func walkNode(ctx context.Context, depth uint8, id ID, budget uint64, load func(ID) ([]byte, error), ahead func([]ID), fn func(listEntry) error) (uint64, error) {
	b, err := load(id)
	if err != nil {
		return 0, err
	}
	var sum uint64
	if depth == 1 {
		if len(b)%entry0Size != 0 || len(b) == 0 {
			return 0, fmt.Errorf("%w: list chunk %s has %d bytes", ErrCorrupt, id.Short(), len(b))
		}
		for i := 0; i < len(b); i += entry0Size {
			var e listEntry
			copy(e.ID[:], b[i:])
			e.Len = binary.LittleEndian.Uint32(b[i+32:])
			if e.Len == 0 || uint64(e.Len) > budget-sum {
				return 0, fmt.Errorf("%w: list chunk %s: chunk %s of %d bytes (%d of %d bytes left)", ErrCorrupt, id.Short(), e.ID.Short(), e.Len, budget-sum, budget)
			}
			sum += uint64(e.Len)
			if err := fn(e); err != nil {
				return 0, err
			}
		}
		return sum, nil
	}
	if len(b)%entryNSize != 0 || len(b) == 0 {
		return 0, fmt.Errorf("%w: list chunk %s has %d bytes", ErrCorrupt, id.Short(), len(b))
	}
	// Copy the entries out: load may reuse its buffer.
	type entry struct {
		id    ID
		bytes uint64
	}
	entries := make([]entry, 0, len(b)/entryNSize)
	for i := 0; i < len(b); i += entryNSize {
		var e entry
		copy(e.id[:], b[i:])
		e.bytes = binary.LittleEndian.Uint64(b[i+32:])
		entries = append(entries, e)
	}
	if depth == 2 && ahead != nil {
		ids := make([]ID, len(entries))
		for i, e := range entries {
			ids[i] = e.id
		}
		ahead(ids)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if e.bytes == 0 || e.bytes > budget-sum {
			return 0, fmt.Errorf("%w: list chunk %s: an entry of %d bytes (%d of %d bytes left)", ErrCorrupt, id.Short(), e.bytes, budget-sum, budget)
		}
		n, err := walkNode(ctx, depth-1, e.id, e.bytes, load, ahead, fn)
		switch {
		case errors.Is(err, errSkipSubtree):
		case err != nil:
			return 0, err
		case n != e.bytes:
			return 0, fmt.Errorf("%w: list chunk %s: an entry says %d bytes, its subtree holds %d", ErrCorrupt, id.Short(), e.bytes, n)
		}
		sum += e.bytes
	}
	return sum, nil
}
