package recompress

import (
	"encoding/binary"
	"fmt"

	"github.com/larder/larder/recompress/deflate"
)

// appendSegments encodes a member's parts (recipe version 2).
func appendSegments(b []byte, segs []Segment) []byte {
	b = binary.AppendUvarint(b, uint64(len(segs)))
	for _, s := range segs {
		b = append(b, s.Kind)
		b = binary.AppendUvarint(b, s.Content)
		b = binary.AppendUvarint(b, s.Bits)
		if s.Kind == SegStored {
			b = binary.AppendUvarint(b, uint64(len(s.Stored)))
			for _, r := range s.Stored {
				b = binary.AppendUvarint(b, uint64(r.Len))
				b = binary.AppendUvarint(b, uint64(r.Count))
			}
		}
	}
	return b
}

// segments decodes a member's parts, counting them as nodes.
func (d *decoder) segments() []Segment {
	n := d.count(MaxSegments)
	var segs []Segment
	for i := 0; i < n && d.err == nil; i++ {
		d.nodes++
		if d.nodes > MaxNodes {
			d.fail("more than %d nodes", MaxNodes)
			return nil
		}
		s := Segment{Kind: d.byte(), Content: d.uvarint(), Bits: d.uvarint()}
		if s.Kind == SegStored {
			nr := d.count(deflate.MaxStoredRuns)
			for j := 0; j < nr && d.err == nil; j++ {
				l, c := d.uvarint(), d.uvarint()
				if l > 0xffff || c == 0 || c > 1<<32-1 {
					d.fail("stored run of %d blocks of %d bytes", c, l)
				}
				s.Stored = append(s.Stored, deflate.StoredRun{Len: uint16(l), Count: uint32(c)})
			}
		}
		segs = append(segs, s)
	}
	return segs
}

// checkSegments checks member i's parts: kinds, that they cover its
// content and its exact bytes (a partial member's: its exact bytes and
// less than the byte after them, and no more than its content), that
// stored parts add up.
func checkSegments(i int, m *Member) error {
	if len(m.Segments) == 0 {
		return nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: member %d: "+format, append([]any{ErrRecipe, i}, a...)...)
	}
	if m.Mode == ModeVerbatim || m.Params.Engine == deflate.Stored {
		return bad("parts need an exact or partial member of a restartable engine")
	}
	if len(m.Segments) > MaxSegments {
		return bad("%d parts", len(m.Segments))
	}
	var content, bits uint64
	for k, s := range m.Segments {
		switch {
		case s.Kind == SegStart && k != 0:
			return bad("part %d starts the stream", k)
		case s.Kind != SegStart && s.Kind != SegStored && deflate.Warm(s.Kind) > deflate.MaxWarm:
			return bad("part %d of unknown kind %d", k, s.Kind)
		case s.Kind != SegStored && len(s.Stored) != 0:
			return bad("part %d has stored blocks", k)
		case s.Content == 0 && s.Kind != SegStored:
			return bad("part %d is empty", k)
		case s.Content > MaxPartContent:
			return bad("part %d of %d content bytes is over the %d-byte limit", k, s.Content, MaxPartContent)
		case s.Bits == 0 || s.Bits > 1<<60:
			return bad("part %d of %d bits", k, s.Bits)
		}
		if s.Kind == SegStored {
			want, n := storedBits(bits, s.Stored)
			if n != s.Content || want != s.Bits {
				return bad("stored part %d: %d bytes, %d bits; its blocks hold %d bytes, %d bits", k, s.Content, s.Bits, n, want)
			}
		}
		content += s.Content
		bits += s.Bits
	}
	switch {
	case m.Mode == ModeExact && (content != m.ContentLen || bits != m.Exact*8):
		return bad("parts cover %d content bytes and %d bits, the member %d and %d", content, bits, m.ContentLen, m.Exact*8)
	case m.Mode == ModePartial && (content > m.ContentLen || bits/8 != m.Exact):
		// The tail starts with the byte the last part's bits end in.
		return bad("parts cover %d content bytes and %d bits; the partial member has %d and %d exact bytes",
			content, bits, m.ContentLen, m.Exact)
	}
	if m.Segments[0].Kind != SegStart && m.Segments[0].Kind != SegStored {
		return bad("the first part restarts")
	}
	return nil
}

// storedBits returns the bits that stored blocks of runs make from bit
// offset at, and the bytes they hold.
func storedBits(at uint64, runs []deflate.StoredRun) (bits, n uint64) {
	// A block's 3 header bits are padded to a byte boundary, where the
	// block then ends: after the first, every block is 40 bits and its
	// bytes.
	pos := at
	for _, r := range runs {
		first := (pos+3+7)/8*8 + 32 + 8*uint64(r.Len)
		pos = first + uint64(r.Count-1)*(40+8*uint64(r.Len))
		n += uint64(r.Count) * uint64(r.Len)
	}
	return pos - at, n
}
