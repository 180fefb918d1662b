package repo

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// Init and the master key file, interrupted part way.

// failSaves wraps be so that the saves for which fail says so fail
// (backend.ErrInjected), as a crash or a full disk would stop them.
func failSaves(be backend.Backend, fail func(h backend.Handle) bool) backend.Backend {
	f := backend.Fault(be, 0, 0)
	f.Hook = func(op string, h backend.Handle) error {
		if op == "save" && fail(h) {
			return backend.ErrInjected
		}
		return nil
	}
	return f
}

// TestInitAfterInterruptedInit: an init that stopped after storing the
// master's key record but before the config left keys/<id>.cert behind;
// running init again (with a new master key) made a repository whose
// every listing failed ("not a key record certified by the master").
// Init now refuses to start over such leftovers.
func TestInitAfterInterruptedInit(t *testing.T) {
	crypto.TestOnlyFastKDF()
	ctx := context.Background()
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	newMaster := func() *crypto.MasterKey {
		pol, err := chunk.RandomPolynomial()
		if err != nil {
			t.Fatal(err)
		}
		m, err := crypto.NewMasterKey(nil, uint64(pol))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	crashed := failSaves(be, func(h backend.Handle) bool { return h.Type == backend.TypeConfig })
	if _, err := Init(ctx, crashed, newMaster(), nil); !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("interrupted init: %v", err)
	}
	m := newMaster()
	r, err := Init(ctx, be, m, nil)
	if err != nil {
		return // refused: the leftovers are for a person to look at
	}
	defer r.Close()
	if _, err := r.Snapshots(ctx, false); err != nil {
		t.Fatalf("a repository made over an interrupted init does not work: %v", err)
	}
}

// TestReplaceMasterKeyFileInterrupted: key passwd stores the new master
// key file as <id>.key-new, removes <id>.key and stores it again; stopped
// in between, the repository held no <id>.key and MasterKeyFile failed
// although the new file was there.
func TestReplaceMasterKeyFileInterrupted(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	m := open(t, be, k.master)
	name := k.master.ID.String() + ".key"
	m.be = failSaves(be, func(h backend.Handle) bool { return h.Type == backend.TypeKey && h.Name == name })
	kf, err := k.master.MarshalKeyFile([]byte("new passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReplaceMasterKeyFile(ctx, kf); !errors.Is(err, backend.ErrInjected) {
		t.Fatalf("interrupted key passwd: %v", err)
	}
	got, err := MasterKeyFile(ctx, be)
	if err != nil {
		t.Fatalf("the master key file after an interrupted passphrase change: %v", err)
	}
	if f, err := crypto.ParseKeyFile(got, []byte("new passphrase")); err != nil || f.Master.ID != k.master.ID {
		t.Fatalf("the stored master key file does not open with the new passphrase: %v", err)
	}
	// The next change completes.
	m.be = be
	if err := m.ReplaceMasterKeyFile(ctx, kf); err != nil {
		t.Fatal(err)
	}
	if got, err := MasterKeyFile(ctx, be); err != nil || !bytes.Equal(got, kf) {
		t.Fatalf("after the next change: %v", err)
	}
	if names := listNames(t, be, backend.TypeKey); len(names) != 4 {
		t.Errorf("keys/ holds %v", names)
	}
}
