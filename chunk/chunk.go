// Package chunk cuts canonical streams into content-defined chunks with
// github.com/restic/chunker and a secret polynomial per repository, so that
// what did not change from one night to the next is stored once.
//
// # Sizes
//
// The sizes are a trade-off measured by BenchmarkChunkSizes on a 10-night
// series of Discourse backups (1.89 GB downloaded): small chunks catch the
// scattered daily changes of an SQL dump (new rows, edited posts, counters
// that move rows), big chunks cost less metadata (index entries and the
// chunk lists of every snapshot). Text streams (SQL, table data, JSON) and
// bulk streams (tar skeletons with the uploads, verbatim bytes) are
// measured apart:
//
//	text, average   2   4   8   16  64 KiB: stored 242 259 316 412 647 MB
//	bulk, average   8  16  64  256 1024 KiB: stored 120 121 127 146 381 MB
//
// (new chunks sealed in 256 KiB frames, as repository version 2 stores
// them; with a blob per chunk, compressed one by one, text was best at
// 4 KiB: 371 356 373 489 687 MB). Text uses a 2 KiB average (the best),
// bulk a 64 KiB average (within 6 % of the best with a fifth of its
// chunks: the index and the chunk lists grow with the number of chunks).
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package chunk

import (
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Params are the chunking settings of a repository.
type Params struct {
	Pol     chunker.Pol
	Min     uint // smallest chunk, but the last
	Max     uint // largest chunk
	AvgBits int  // chunks are about 2^AvgBits bytes on average (above Min)
}

// Limits on chunk sizes anywhere in larder.
const (
	// MaxChunk bounds the size of any chunk: buffers and decoders are
	// sized by it.
	MaxChunk   = 8 << 20
	minAvgBits = 10
	maxAvgBits = 22
)

// TextParams are the sizes for text streams: a 2 KiB average, 512 bytes
// to 16 KiB.
func TextParams(pol chunker.Pol) Params {
	return Params{Pol: pol, Min: 512, Max: 16 << 10, AvgBits: 11}
}

// BulkParams are the sizes for bulk streams: a 64 KiB average, 16 to
// 512 KiB.
func BulkParams(pol chunker.Pol) Params {
	return Params{Pol: pol, Min: 16 << 10, Max: 512 << 10, AvgBits: 16}
}

// ErrParams reports chunking settings that are out of range.
var ErrParams = errors.New("chunk: invalid parameters")

// Validate checks p.
func (p Params) Validate() error {
	switch {
	case p.Pol.Deg() != 53 || !p.Pol.Irreducible():
		return fmt.Errorf("%w: polynomial %v is not an irreducible polynomial of degree 53", ErrParams, p.Pol)
	case p.AvgBits < minAvgBits || p.AvgBits > maxAvgBits:
		return fmt.Errorf("%w: average of 2^%d bytes", ErrParams, p.AvgBits)
	case p.Min < 64 || p.Min >= p.Max || p.Max > MaxChunk:
		return fmt.Errorf("%w: sizes %d to %d", ErrParams, p.Min, p.Max)
	}
	return nil
}

// RandomPolynomial returns a new secret polynomial for a repository.
func RandomPolynomial() (chunker.Pol, error) { return chunker.RandomPolynomial() }

// Chunker cuts a stream into chunks.
type Chunker struct {
	c   *chunker.Chunker
	buf []byte
}

// New returns a Chunker reading r. It panics on invalid p: check p with
// Validate when it comes from storage.
func New(r io.Reader, p Params) *Chunker {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	c := chunker.NewWithBoundaries(r, p.Pol, p.Min, p.Max)
	c.SetAverageBits(p.AvgBits)
	return &Chunker{c: c, buf: make([]byte, 0, p.Max)}
}

// Reset makes c read a new stream, reusing its buffers.
func (c *Chunker) Reset(r io.Reader, p Params) {
	c.c.ResetWithBoundaries(r, p.Pol, p.Min, p.Max)
	c.c.SetAverageBits(p.AvgBits)
}

// Next returns the next chunk. The slice is valid until the next call. At
// the end of the stream it returns io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	ch, err := c.c.Next(c.buf)
	if err != nil {
		return nil, err
	}
	c.buf = ch.Data[:0]
	return ch.Data, nil
}
