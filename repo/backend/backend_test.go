package backend_test

import (
	"path/filepath"
	"testing"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/backend/backendtest"
)

func TestLocal(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	}, backendtest.Options{ModTime: true})
}

// TestLocalWithoutRenameNoReplace: on a file system without
// RENAME_NOREPLACE (and without hard links, which larder never uses) the
// folder backend still never replaces an object and saves atomically.
func TestLocalWithoutRenameNoReplace(t *testing.T) {
	defer backend.WithoutRenameat2()()
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	}, backendtest.Options{ModTime: true, Sequential: true})
}

func TestMem(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return backend.NewMem() }, backendtest.Options{ModTime: true})
}

func TestLimit(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return backend.Limit(backend.NewMem(), 2) }, backendtest.Options{ModTime: true})
}

// TestRetryOverFaults: a backend that fails a third of its operations at
// random, in every way (before or after doing the work, part way through
// a read or a listing), passes the suite behind Retry.
func TestRetryOverFaults(t *testing.T) {
	seed, fails := uint64(0), 0
	var faults []*backend.FaultBackend
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		seed++
		f := backend.Fault(backend.NewMem(), 0.33, seed)
		faults = append(faults, f)
		return backend.Retry(f, backend.RetryPolicy{Attempts: 30})
	}, backendtest.Options{ModTime: true})
	for _, f := range faults {
		fails += f.Fails
	}
	if fails < 20 {
		t.Errorf("only %d faults were injected", fails)
	}
	t.Logf("%d faults injected", fails)
}
