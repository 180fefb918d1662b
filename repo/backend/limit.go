package backend

import (
	"context"
	"io"
)

// LimitBackend bounds how many operations run on a backend at once (S3
// connections; restic's backend/sema is the model). A listing takes no
// place of its own: fn may use the backend.
type LimitBackend struct {
	Backend
	sem chan struct{}
}

// Limit wraps be so that at most n operations run at once (n ≥ 1).
func Limit(be Backend, n int) *LimitBackend {
	return &LimitBackend{Backend: be, sem: make(chan struct{}, max(n, 1))}
}

func (l *LimitBackend) acquire(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *LimitBackend) release() { <-l.sem }

// Save implements Backend.
func (l *LimitBackend) Save(ctx context.Context, h Handle, src Source) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.Backend.Save(ctx, h, src)
}

// Load implements Backend; the place is held while fn reads.
func (l *LimitBackend) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.Backend.Load(ctx, h, offset, length, fn)
}

// Stat implements Backend.
func (l *LimitBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	if err := l.acquire(ctx); err != nil {
		return FileInfo{}, err
	}
	defer l.release()
	return l.Backend.Stat(ctx, h)
}

// Remove implements Backend.
func (l *LimitBackend) Remove(ctx context.Context, h Handle) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.Backend.Remove(ctx, h)
}

// Unwrap returns the wrapped backend.
func (l *LimitBackend) Unwrap() Backend { return l.Backend }
