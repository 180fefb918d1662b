package repo

import (
	"io"
	"sync"
)

// A stream's writer (the unpacker, inflating and verifying) and its
// chunker (cutting, sealing and packing) run at their own pace; a
// synchronous pipe between them made each wait for the other's every
// chunk. Segments are instead buffered, up to streamBuffer bytes in all
// per stream, so both run at once while memory stays bounded.
const (
	pipeBuf      = 64 << 10
	streamBuffer = 4 << 20
)

var pipeBufs = sync.Pool{New: func() any { b := make([]byte, 0, pipeBuf); return &b }}

// bufPipe is one segment: Write copies into pooled buffers that Read
// hands out in order. Buffers count against the stream's budget (slots),
// shared by its segments, so a writer runs at most streamBuffer ahead.
type bufPipe struct {
	slots chan struct{}
	bufs  chan *[]byte
	cur   *[]byte
	off   int
	wcur  *[]byte
}

func newBufPipe(slots chan struct{}) *bufPipe {
	return &bufPipe{slots: slots, bufs: make(chan *[]byte, cap(slots))}
}

// Write copies p, blocking while the stream's buffers are all full.
func (p *bufPipe) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.wcur == nil {
			p.slots <- struct{}{}
			p.wcur = pipeBufs.Get().(*[]byte)
			*p.wcur = (*p.wcur)[:0]
		}
		k := min(len(b), pipeBuf-len(*p.wcur))
		*p.wcur = append(*p.wcur, b[:k]...)
		b = b[k:]
		if len(*p.wcur) == pipeBuf {
			p.bufs <- p.wcur
			p.wcur = nil
		}
	}
	return n, nil
}

// Close ends the segment: Read returns io.EOF after the bytes written.
func (p *bufPipe) Close() error {
	if p.wcur != nil {
		p.bufs <- p.wcur
		p.wcur = nil
	}
	close(p.bufs)
	return nil
}

// Read returns the segment's bytes in order.
func (p *bufPipe) Read(b []byte) (int, error) {
	for p.cur == nil || p.off == len(*p.cur) {
		if p.cur != nil {
			p.release()
		}
		c, ok := <-p.bufs
		if !ok {
			return 0, io.EOF
		}
		p.cur, p.off = c, 0
	}
	n := copy(b, (*p.cur)[p.off:])
	p.off += n
	return n, nil
}

func (p *bufPipe) release() {
	pipeBufs.Put(p.cur)
	p.cur = nil
	<-p.slots
}
