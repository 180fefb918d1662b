package recompress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// gzip header flags (RFC 1952).
const (
	gzFText    = 1 << 0
	gzFHCRC    = 1 << 1
	gzFExtra   = 1 << 2
	gzFName    = 1 << 3
	gzFComment = 1 << 4
	gzReserved = 0xe0
)

// maxGzipString bounds FNAME and FCOMMENT: a header that goes on longer is
// treated as damaged rather than buffered.
const maxGzipString = 64 << 10

var errNotGzip = errors.New("not a gzip header")

// isGzip reports whether b starts like a gzip member (magic and deflate).
func isGzip(b []byte) bool {
	return len(b) >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8
}

// gzipHeader is a parsed gzip member header and its exact bytes.
type gzipHeader struct {
	raw   []byte
	xfl   byte
	os    byte
	name  string
	mtime uint32
}

// readGzipHeader reads one member header from r, keeping its bytes. It
// consumes nothing when the bytes are not a complete, valid header.
func readGzipHeader(r *bufio.Reader) (*gzipHeader, error) {
	need := 10
	peek := func(n int) ([]byte, error) {
		b, err := r.Peek(n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return nil, fmt.Errorf("gzip header truncated at %d bytes", len(b))
			}
			return nil, err
		}
		return b, nil
	}
	b, err := peek(need)
	if err != nil {
		return nil, err
	}
	if !isGzip(b) {
		return nil, errNotGzip
	}
	flg := b[3]
	if flg&gzReserved != 0 {
		return nil, fmt.Errorf("gzip header has reserved flags %#x", flg)
	}
	h := &gzipHeader{xfl: b[8], os: b[9], mtime: uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24}
	if flg&gzFExtra != 0 {
		if b, err = peek(need + 2); err != nil {
			return nil, err
		}
		need += 2 + int(b[need]) | int(b[need+1])<<8
		if _, err = peek(need); err != nil {
			return nil, err
		}
	}
	for _, f := range []byte{gzFName, gzFComment} {
		if flg&f == 0 {
			continue
		}
		start := need
		for {
			if need-start > maxGzipString {
				return nil, fmt.Errorf("gzip header string longer than %d bytes", maxGzipString)
			}
			if b, err = peek(need + 1); err != nil {
				return nil, err
			}
			need++
			if b[need-1] == 0 {
				break
			}
		}
		if f == gzFName {
			h.name = string(b[start : need-1])
		}
	}
	if flg&gzFHCRC != 0 {
		need += 2
	}
	if b, err = peek(need); err != nil {
		return nil, err
	}
	h.raw = append([]byte(nil), b...)
	_, err = r.Discard(need)
	return h, err
}
