package backend

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
)

// FaultBackend injects failures into a backend's operations, for tests:
// as a dropped connection, a server that answers with an error, or one
// whose answer is lost after it did the work.
type FaultBackend struct {
	Backend
	mu  sync.Mutex
	rnd *rand.Rand
	// Rate is the share (0 to 1) of operations that fail at random.
	rate float64
	// Hook, when set, is asked before each operation; an error it
	// returns is the operation's (nothing is done).
	Hook func(op string, h Handle) error
	// Fails counts injected failures.
	Fails int
}

// ErrInjected is the error of an injected failure (transient: Retry
// retries it).
var ErrInjected = errors.New("injected failure")

// Fault wraps be. A share rate of its operations fail at random (seeded,
// so runs repeat): half of the failed Saves and Removes fail before doing
// anything, half after doing it (the answer lost); failed Loads and Lists
// stop part way through, after handing over some bytes or names.
func Fault(be Backend, rate float64, seed uint64) *FaultBackend {
	return &FaultBackend{Backend: be, rate: rate, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// roll decides whether this operation fails, and how (after: the work is
// done first).
func (f *FaultBackend) roll(op string, h Handle) (fail, after bool, err error) {
	if f.Hook != nil {
		if err := f.Hook(op, h); err != nil {
			return false, false, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate <= 0 || f.rnd.Float64() >= f.rate {
		return false, false, nil
	}
	f.Fails++
	return true, f.rnd.IntN(2) == 0, nil
}

// Save implements Backend.
func (f *FaultBackend) Save(ctx context.Context, h Handle, src Source) error {
	fail, after, err := f.roll("save", h)
	switch {
	case err != nil:
		return err
	case !fail:
		return f.Backend.Save(ctx, h, src)
	case after:
		if err := f.Backend.Save(ctx, h, src); err != nil {
			return err
		}
		return ErrInjected
	}
	// The connection drops part way through the upload: nothing is
	// stored.
	_, _ = io.CopyN(io.Discard, src, src.Length()/2) // the injected error is the one to report
	return ErrInjected
}

// Load implements Backend.
func (f *FaultBackend) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	fail, _, err := f.roll("load", h)
	if err != nil {
		return err
	}
	if !fail {
		return f.Backend.Load(ctx, h, offset, length, fn)
	}
	return f.Backend.Load(ctx, h, offset, length, func(r io.Reader) error {
		// Half the bytes, then the connection drops.
		ferr := fn(&cutReader{r: r, left: max(length, 1) / 2})
		if ferr == nil {
			return ErrInjected
		}
		return ferr
	})
}

type cutReader struct {
	r    io.Reader
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrInjected
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// Stat implements Backend.
func (f *FaultBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	fail, _, err := f.roll("stat", h)
	if err != nil {
		return FileInfo{}, err
	}
	if fail {
		return FileInfo{}, ErrInjected
	}
	return f.Backend.Stat(ctx, h)
}

// List implements Backend.
func (f *FaultBackend) List(ctx context.Context, t Type, fn func(FileInfo) error) error {
	fail, _, err := f.roll("list", Handle{Type: t})
	if err != nil {
		return err
	}
	if !fail {
		return f.Backend.List(ctx, t, fn)
	}
	n := 0
	err = f.Backend.List(ctx, t, func(fi FileInfo) error {
		if n++; n > 1 {
			return ErrInjected
		}
		return fn(fi)
	})
	if err == nil {
		err = ErrInjected
	}
	return err
}

// Remove implements Backend.
func (f *FaultBackend) Remove(ctx context.Context, h Handle) error {
	fail, after, err := f.roll("remove", h)
	switch {
	case err != nil:
		return err
	case !fail:
		return f.Backend.Remove(ctx, h)
	case after:
		if err := f.Backend.Remove(ctx, h); err != nil {
			return err
		}
	}
	return ErrInjected
}

// Unwrap returns the wrapped backend.
func (f *FaultBackend) Unwrap() Backend { return f.Backend }

// Find returns the first backend of type T in the chain of wrappers that
// starts at be (each with an Unwrap method).
func Find[T any](be Backend) (T, bool) {
	for be != nil {
		if t, ok := be.(T); ok {
			return t, true
		}
		u, ok := be.(interface{ Unwrap() Backend })
		if !ok {
			break
		}
		be = u.Unwrap()
	}
	var zero T
	return zero, false
}
