package backend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Mem is a backend in memory, for tests. Its clock, which dates saved
// objects (FileInfo.ModTime), can be set.
type Mem struct {
	mu   sync.Mutex
	objs map[Handle]memObject
	now  func() time.Time
}

type memObject struct {
	b []byte
	t time.Time
}

// NewMem returns an empty memory backend dated by time.Now.
func NewMem() *Mem { return &Mem{objs: map[Handle]memObject{}, now: time.Now} }

// SetClock sets the clock that dates saved objects.
func (m *Mem) SetClock(now func() time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = now
}

// Location implements Backend.
func (m *Mem) Location() string { return "mem:" }

// Close implements Backend.
func (m *Mem) Close() error { return nil }

// Save implements Backend.
func (m *Mem) Save(ctx context.Context, h Handle, src Source) error {
	if err := h.Valid(); err != nil {
		return Permanent(err)
	}
	b, err := io.ReadAll(ctxReader{ctx, src})
	if err != nil {
		return err
	}
	if int64(len(b)) != src.Length() {
		return Permanent(fmt.Errorf("%s: the source gave %d bytes, it said %d", h, len(b), src.Length()))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[h]; ok {
		return fmt.Errorf("%w: %s", ErrExists, h)
	}
	m.objs[h] = memObject{b: b, t: m.now()}
	return nil
}

// Load implements Backend: the reader covers exactly the range asked for.
func (m *Mem) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	if offset < 0 || length < 0 {
		return Permanent(fmt.Errorf("%s: invalid range %d+%d", h, offset, length))
	}
	m.mu.Lock()
	o, ok := m.objs[h]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	b := o.b
	if offset >= int64(len(b)) {
		b = nil
	} else {
		b = b[offset:]
	}
	if length > 0 && length < int64(len(b)) {
		b = b[:length]
	}
	return fn(ctxReader{ctx, bytes.NewReader(b)})
}

// Stat implements Backend.
func (m *Mem) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[h]
	if !ok {
		return FileInfo{}, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	return FileInfo{Name: h.Name, Size: int64(len(o.b)), ModTime: o.t}, nil
}

// List implements Backend.
func (m *Mem) List(ctx context.Context, t Type, fn func(FileInfo) error) error {
	m.mu.Lock()
	var out []FileInfo
	for h, o := range m.objs {
		if h.Type == t {
			out = append(out, FileInfo{Name: h.Name, Size: int64(len(o.b)), ModTime: o.t})
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, fi := range out {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements Backend.
func (m *Mem) Remove(ctx context.Context, h Handle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[h]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	delete(m.objs, h)
	return nil
}

// Put stores b under h, replacing what is there: a test playing the
// storage provider, which can write anything.
func (m *Mem) Put(h Handle, b []byte) { m.PutAt(h, b, m.clock()) }

// PutAt is Put with the object dated t.
func (m *Mem) PutAt(h Handle, b []byte, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[h] = memObject{b: bytes.Clone(b), t: t}
}

func (m *Mem) clock() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now()
}
