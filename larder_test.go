package larder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
)

type testRepo struct {
	be     *backend.Local
	master *crypto.MasterKey
	write  *crypto.WriteKey
	audit  *crypto.AuditKey
}

func newTestRepo(t testing.TB) *testRepo {
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
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	ctx := context.Background()
	r, err := repo.Init(ctx, be, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, _ := m.NewWriteKey("forum", r.Config().Created)
	a, _ := m.NewAuditKey("auditor", r.Config().Created)
	if err := r.AddKey(ctx, w.Record()); err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(ctx, a.Record()); err != nil {
		t.Fatal(err)
	}
	return &testRepo{be: be, master: m, write: w, audit: a}
}

func (tr *testRepo) open(t testing.TB, key repo.Key) *repo.Repo {
	t.Helper()
	r, err := repo.Open(context.Background(), tr.be, key)
	if err != nil {
		t.Fatal(err)
	}
	r.SetCacheDir(t.TempDir())
	t.Cleanup(func() { r.Close() })
	return r
}

func committedFixtures(t testing.TB) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join("testdata", "small"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Dir(p) != filepath.Join("testdata", "small") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	if len(files) < 6 {
		t.Fatalf("committed fixtures missing (%d found)", len(files))
	}
	return files
}

func TestIngestRestoreCommitted(t *testing.T) {
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	for _, f := range committedFixtures(t) {
		res, err := Ingest(ctx, w, f, IngestOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if res.Existing != "" || res.Snapshot == (repo.ID{}) {
			t.Fatalf("%s: not ingested: %+v", f, res)
		}
		snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Restore(ctx, m, snap, &out); err != nil {
			t.Fatalf("%s: restore: %v", f, err)
		}
		orig, _ := os.ReadFile(f)
		if !bytes.Equal(out.Bytes(), orig) {
			t.Fatalf("%s: restored bytes differ", f)
		}
		if sha256.Sum256(out.Bytes()) != res.SHA256 {
			t.Fatalf("%s: hash", f)
		}
		// A second ingest of the same bytes stores nothing.
		again, err := Ingest(ctx, w, f, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if again.Existing != res.Snapshot.String() {
			t.Fatalf("%s: second ingest not skipped: %+v", f, again)
		}
	}
}

func TestRestoreFileAtomic(t *testing.T) {
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	f := committedFixtures(t)[1]
	res, err := Ingest(ctx, w, f, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "restored.tar.gz")
	if _, err := RestoreFile(ctx, m, snap, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	orig, _ := os.ReadFile(f)
	if !bytes.Equal(got, orig) {
		t.Fatal("restored file differs")
	}
	// A snapshot whose recorded hash is wrong: nothing gets the final name.
	bad := *snap.Manifest
	bad.SHA256 = "00" + bad.SHA256[2:]
	snap.Manifest = &bad
	out2 := filepath.Join(dir, "bad.tar.gz")
	if _, err := RestoreFile(ctx, m, snap, out2); err == nil {
		t.Fatal("a hash mismatch was not reported")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("a failed restore left files: %v", ents)
	}
}

// TestWithProgress: a restore under WithProgress reports to its own
// function, up to the file's size, and not to the repository's listener,
// which a concurrent operation on the same repository may have set.
func TestWithProgress(t *testing.T) {
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	f := committedFixtures(t)[1]
	res, err := Ingest(ctx, w, f, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
	if err != nil {
		t.Fatal(err)
	}
	listened := 0
	m.SetProgress(func(string, int64, int64) { listened++ })
	var last, total int64
	own := WithProgress(ctx, func(phase string, done, tot int64) {
		if phase != "restore" {
			t.Errorf("phase %q", phase)
		}
		last, total = done, tot
	})
	if _, err := Restore(own, m, snap, io.Discard); err != nil {
		t.Fatal(err)
	}
	if last != res.Size || total != res.Size || listened != 0 {
		t.Fatalf("reported %d of %d (file %d bytes); the repository's listener heard %d reports", last, total, res.Size, listened)
	}
	if _, err := Restore(ctx, m, snap, io.Discard); err != nil || listened == 0 {
		t.Fatalf("without WithProgress the listener heard %d reports (%v)", listened, err)
	}
}
