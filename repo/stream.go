package repo

import (
	"context"
	"errors"
	"io"

	"github.com/larder/larder/chunk"
)

// StreamWriter stores one canonical stream of a snapshot. The bytes
// written to it are cut into content-defined chunks with the chunking of
// the stream's class; each chunk is stored unless the repository holds it
// already, and the chunks are listed in a tree of list chunks (tree.go).
// Close stores what is left; Ref is then the stream's reference, for
// Manifest.Streams.
//
// Boundary says that a record starts (a tar member, a table's rows): the
// chunker cuts there, so that a record added or removed does not change the
// chunks of its neighbours.
//
// A StreamWriter is used by one goroutine. The chunking runs in a goroutine
// of its own, fed through one pipe per segment between boundaries, so the
// memory is the chunker's buffer whatever the stream's length.
type StreamWriter struct {
	ctx     context.Context
	kind    uint8
	segs    chan io.Reader
	slots   chan struct{} // the stream's buffers (bufPipe)
	cur     *bufPipe
	written bool // bytes went into the current segment
	done    chan error
	closed  bool
	err     error
	ref     StreamRef
}

// NewStream starts a stream of kind (the manifest's StreamRef.Kind) whose
// chunks are cut with the chunking of class (ClassText or ClassBulk).
// Every stream must be closed before Commit.
func (w *Writer) NewStream(ctx context.Context, kind uint8, class string) (*StreamWriter, error) {
	p, err := w.r.ChunkParams(class)
	if err != nil {
		return nil, err
	}
	s := &StreamWriter{ctx: ctx, kind: kind, segs: make(chan io.Reader, streamBuffer/pipeBuf),
		slots: make(chan struct{}, streamBuffer/pipeBuf), done: make(chan error, 1)}
	s.next()
	go func() { s.done <- s.consume(w, p) }()
	return s, nil
}

// next starts a segment.
func (s *StreamWriter) next() {
	s.cur, s.written = newBufPipe(s.slots), false
	s.segs <- s.cur
}

// Write adds bytes to the stream.
func (s *StreamWriter) Write(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("repo: write to a closed stream")
	}
	if len(p) > 0 {
		s.written = true
	}
	return s.cur.Write(p)
}

// Boundary ends the current segment: the next byte starts a chunk.
func (s *StreamWriter) Boundary() error {
	if s.closed {
		return errors.New("repo: boundary in a closed stream")
	}
	if !s.written {
		return nil
	}
	_ = s.cur.Close() // a bufPipe's Close never fails
	s.next()
	return nil
}

// Close stores the stream's last chunks and its chunk list. It returns the
// first error of the stream's chunking or storing; calling it again returns
// the same.
func (s *StreamWriter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	_ = s.cur.Close() // a bufPipe's Close never fails
	close(s.segs)
	s.err = <-s.done
	return s.err
}

// Ref is the stream's reference for a manifest, once Close has returned
// nil; the zero StreamRef before.
func (s *StreamWriter) Ref() StreamRef {
	if !s.closed || s.err != nil {
		return StreamRef{}
	}
	return s.ref
}

// consume chunks every segment of the stream, stores the chunks and their
// list, and sets ref. After a failure it keeps reading the segments, so that
// Write never blocks, and returns the failure.
func (s *StreamWriter) consume(w *Writer, p chunk.Params) error {
	tb := w.storeTree()
	fw := w.newFrameWriter()
	var c *chunk.Chunker
	var total uint64
	var err error
	for seg := range s.segs {
		if err == nil {
			if c == nil {
				c = chunk.New(seg, p)
			} else {
				c.Reset(seg, p)
			}
			var n uint64
			n, err = s.chunkSegment(c, fw, tb)
			total += n
		}
		if err != nil {
			// Keep the writer moving; the error is the stream's.
			_, _ = io.Copy(io.Discard, seg)
		}
	}
	if cerr := fw.Close(s.ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	depth, root, err := tb.Finish(s.ctx)
	if err != nil {
		return err
	}
	s.ref = StreamRef{Kind: s.kind, Len: total, Depth: depth, Root: root}
	return nil
}

// chunkSegment stores the chunks of one segment and adds them to the
// stream's list; it returns the bytes stored.
func (s *StreamWriter) chunkSegment(c *chunk.Chunker, fw *frameWriter, tb *treeBuilder) (uint64, error) {
	var total uint64
	for {
		data, err := c.Next()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		id, err := fw.Add(s.ctx, data)
		if err != nil {
			return total, err
		}
		if err := tb.Add(s.ctx, id, uint32(len(data))); err != nil {
			return total, err
		}
		total += uint64(len(data))
	}
}
