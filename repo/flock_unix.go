//go:build unix

package repo

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// flockFile takes an exclusive advisory lock on the file at path (made if
// missing), waiting for it until ctx ends. The lock is the operating
// system's: it goes when the process dies, however it dies.
func flockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// Closing the file releases the lock; nothing was written.
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close() // not locked, nothing written
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = f.Close() // not locked, nothing written
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryFlockFile takes the lock only if no one holds it.
func tryFlockFile(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		_ = f.Close() // not locked, nothing written
		return nil, false
	}
	// Closing the file releases the lock; nothing was written.
	return func() { _ = f.Close() }, true
}

// processAlive reports whether a process with the ID runs on this machine.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
