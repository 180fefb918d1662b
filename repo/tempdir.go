package repo

import (
	"os"
	"path/filepath"
	"time"
)

// tempGrace is how old a temporary folder without an owner file must be
// before it is taken for a dead run's.
const tempGrace = time.Hour

var timeNow = time.Now

// Temporary folders (packs being written, repacks) live under the cache's
// folder, <cache>/<repository ID>/tmp/<kind>-<random>, each with an owner
// file its process holds a lock on for its life. A folder whose owner's
// lock can be taken belongs to a process that is gone (killed): the next
// run removes it.

const tempOwner = ".owner"

// holdTempDir takes the owner lock of a temporary folder; the returned
// function releases it.
func holdTempDir(dir string) (func(), error) {
	p := filepath.Join(dir, tempOwner)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	unlock, ok := tryFlockFile(p)
	if !ok {
		return nil, os.ErrExist
	}
	return unlock, nil
}

// cleanTempDirs removes the temporary folders under base whose owners are
// gone, and returns how many.
func cleanTempDirs(base string) int {
	entries, err := os.ReadDir(base)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		if !e.IsDir() {
			continue
		}
		owner := filepath.Join(dir, tempOwner)
		if _, err := os.Stat(owner); err != nil {
			// No owner file: a folder of a run killed before it made one,
			// or of an older larder. Old enough to be nobody's.
			if fi, err := e.Info(); err == nil && fi.ModTime().Before(timeNow().Add(-tempGrace)) {
				_ = os.RemoveAll(dir) // what stays, the next run tries again
				n++
			}
			continue
		}
		if unlock, ok := tryFlockFile(owner); ok {
			_ = os.RemoveAll(dir) // what stays, the next run tries again
			unlock()
			n++
		}
	}
	return n
}
