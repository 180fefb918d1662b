package backend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"
)

// RetryPolicy bounds Retry: how often and how long it tries.
type RetryPolicy struct {
	// Attempts is the most tries of one operation (the first included).
	Attempts int
	// Initial is the wait after the first failure; each next wait doubles,
	// up to Max.
	Initial, Max time.Duration
}

// DefaultRetry is larder's retry policy: 8 tries, waiting 0.5 s, 1 s, 2 s,
// … up to 30 s between them (about a minute in all) before an operation
// fails. docs/STORAGE.md names these numbers.
var DefaultRetry = RetryPolicy{Attempts: 8, Initial: 500 * time.Millisecond, Max: 30 * time.Second}

// RetryBackend retries failed operations of a backend with exponential
// backoff (restic's backend/retry is the model). Errors that retrying
// cannot cure (IsPermanent) are returned at once.
type RetryBackend struct {
	Backend
	policy RetryPolicy
	// Report, when set, hears of each failure that will be retried.
	Report func(op string, h Handle, err error, wait time.Duration)
	sleep  func(context.Context, time.Duration) error
}

// Retry wraps be with retries by policy.
func Retry(be Backend, policy RetryPolicy) *RetryBackend {
	if policy.Attempts < 1 {
		policy.Attempts = 1
	}
	return &RetryBackend{Backend: be, policy: policy, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do runs fn until it succeeds, fails for good, or the tries run out.
func (r *RetryBackend) do(ctx context.Context, op string, h Handle, fn func(try int) error) error {
	wait := r.policy.Initial
	var err error
	for try := 0; try < r.policy.Attempts; try++ {
		if try > 0 {
			if r.Report != nil {
				r.Report(op, h, err, wait)
			}
			if serr := r.sleep(ctx, wait); serr != nil {
				return serr
			}
			wait = min(2*wait, r.policy.Max)
		}
		err = fn(try)
		if err == nil || IsPermanent(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Save implements Backend. A retry that finds the object stored compares
// it with the source: the earlier try may have stored it before its answer
// was lost.
func (r *RetryBackend) Save(ctx context.Context, h Handle, src Source) error {
	return r.do(ctx, "save", h, func(try int) error {
		if try > 0 {
			if err := src.Rewind(); err != nil {
				return Permanent(err)
			}
		}
		err := r.Backend.Save(ctx, h, src)
		if try > 0 && errors.Is(err, ErrExists) {
			if same, cerr := r.sameAs(ctx, h, src); cerr != nil {
				return cerr
			} else if same {
				return nil
			}
		}
		return err
	})
}

// sameAs reports whether the stored object h holds exactly src's bytes.
func (r *RetryBackend) sameAs(ctx context.Context, h Handle, src Source) (bool, error) {
	fi, err := r.Backend.Stat(ctx, h)
	if err != nil {
		return false, err
	}
	if fi.Size != src.Length() {
		return false, nil
	}
	if err := src.Rewind(); err != nil {
		return false, Permanent(err)
	}
	same := true
	err = r.Backend.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		a, b := make([]byte, 64<<10), make([]byte, 64<<10)
		for {
			n, err := io.ReadFull(rd, a)
			if n > 0 {
				if _, e := io.ReadFull(src, b[:n]); e != nil || !bytes.Equal(a[:n], b[:n]) {
					same = false
					return nil
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	return same, err
}

// Load implements Backend: fn is called again on each retry.
func (r *RetryBackend) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	return r.do(ctx, "load", h, func(int) error { return r.Backend.Load(ctx, h, offset, length, fn) })
}

// Stat implements Backend.
func (r *RetryBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	var fi FileInfo
	err := r.do(ctx, "stat", h, func(int) error {
		var err error
		fi, err = r.Backend.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List implements Backend: a retried listing skips the objects fn has
// seen already.
func (r *RetryBackend) List(ctx context.Context, t Type, fn func(FileInfo) error) error {
	seen := map[string]bool{}
	var fnErr error
	err := r.do(ctx, "list", Handle{Type: t}, func(int) error {
		return r.Backend.List(ctx, t, func(fi FileInfo) error {
			if seen[fi.Name] {
				return nil
			}
			seen[fi.Name] = true
			if err := fn(fi); err != nil {
				fnErr = err
				return Permanent(err)
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Remove implements Backend. A retry that finds the object gone counts
// as done: the earlier try may have removed it before its answer was lost.
func (r *RetryBackend) Remove(ctx context.Context, h Handle) error {
	return r.do(ctx, "remove", h, func(try int) error {
		err := r.Backend.Remove(ctx, h)
		if try > 0 && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
}

// Unwrap returns the wrapped backend.
func (r *RetryBackend) Unwrap() Backend { return r.Backend }
