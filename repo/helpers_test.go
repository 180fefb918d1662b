package repo

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	bolt "go.etcd.io/bbolt"
)

type keys struct {
	master *crypto.MasterKey
	write  *crypto.WriteKey
	audit  *crypto.AuditKey
}

// newRepo makes a repository in a temporary folder with a master, a write
// and an audit key.
func newRepo(t testing.TB) (*backend.Local, keys) {
	t.Helper()
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	return be, newRepoOn(t, be)
}

// newRepoOn makes a repository in be with a master, a write and an audit
// key.
func newRepoOn(t testing.TB, be backend.Backend) keys {
	t.Helper()
	crypto.TestOnlyFastKDF()
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	m, err := crypto.NewMasterKey(nil, uint64(pol))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := m.MarshalKeyFile([]byte("master passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := Init(ctx, be, m, kf)
	if err != nil {
		t.Fatal(err)
	}
	w, err := m.NewWriteKey("forum", r.now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.NewAuditKey("auditor", r.now())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(ctx, w.Record()); err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(ctx, a.Record()); err != nil {
		t.Fatal(err)
	}
	r.Close()
	return keys{m, w, a}
}

// open opens be with key, with a cache in a temporary folder that is
// checked for consistency when the test ends.
func open(t testing.TB, be backend.Backend, key Key) *Repo {
	t.Helper()
	r, err := Open(context.Background(), be, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r.SetCacheDir(dir)
	t.Cleanup(func() {
		if r.cache != nil {
			checkBolt(t, r.cache.db)
		}
		r.Close()
	})
	return r
}

func checkBolt(t testing.TB, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Errorf("bbolt cache check: %v", err)
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ingest stores streams as a snapshot with a write (or master) key.
func ingest(t testing.TB, r *Repo, name string, streams ...[]byte) ID {
	t.Helper()
	return ingestManifest(t, r, &Manifest{Name: name}, streams...)
}

// ingestManifest stores streams as a snapshot whose manifest starts as m.
func ingestManifest(t testing.TB, r *Repo, m *Manifest, streams ...[]byte) ID {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	h := sha256.New()
	for i, s := range streams {
		h.Write(s)
		class := ClassText
		if i%2 == 1 {
			class = ClassBulk
		}
		sw, err := w.NewStream(ctx, uint8(i+1), class)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sw.Write(s); err != nil {
			t.Fatal(err)
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		m.Streams = append(m.Streams, sw.Ref())
		m.Size += uint64(len(s))
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	id, err := w.Commit(ctx, m, sum)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func readStream(t testing.TB, r *Repo, ref StreamRef) []byte {
	t.Helper()
	rc, err := r.OpenStream(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustReadFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
