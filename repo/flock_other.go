//go:build !unix

package repo

import "context"

// flockFile does nothing where advisory file locks are not available:
// commits of one key from concurrent processes are then not serialised
// (see Writer.Commit).
func flockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, nil
}

// tryFlockFile never succeeds: nothing can tell a file is unused.
func tryFlockFile(path string) (unlock func(), ok bool) { return nil, false }

// processAlive cannot tell here: a lock is judged by its age alone.
func processAlive(pid int) bool { return true }
