package deflate

import (
	"bufio"
	"errors"
	"io"
)

// errDiverged stops an engine at its first byte that differs.
var errDiverged = errors.New("deflate: output differs from the original")

// Verify re-runs the engine p over content and compares its output with
// original as it is made, stopping at the first byte that differs. It
// returns how many leading bytes of original the engine reproduced, and
// whether it reproduced original exactly (all of it, and nothing more).
// Memory is bounded: the engine's state and a read buffer.
func Verify(p Params, content, original io.Reader) (matched int64, exact bool, err error) {
	cmp := &compareWriter{orig: bufio.NewReaderSize(original, 64<<10)}
	w, err := NewWriter(cmp, p)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(w, content)
	if err == nil {
		err = w.Close()
	}
	if errors.Is(err, errDiverged) {
		return cmp.n, false, nil
	}
	if err != nil {
		return cmp.n, false, err
	}
	if _, err := cmp.orig.ReadByte(); err != io.EOF {
		return cmp.n, false, nil // the original goes on
	}
	return cmp.n, true, nil
}

type compareWriter struct {
	orig *bufio.Reader
	n    int64
}

func (c *compareWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		o, err := c.orig.ReadByte()
		if err != nil || o != b {
			return i, errDiverged
		}
		c.n++
	}
	return len(p), nil
}
