package repo

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/crypto"
)

// Helpers shared by the crash, fuzz, compatibility and regression tests.

// setPackSize rewrites the config of be (signed by master) with another
// pack size: small packs make an ingest of a few MB write several of them.
// ReadConfig accepts 1 MiB and up.
func setPackSize(t testing.TB, be backend.Backend, master *crypto.MasterKey, size int) {
	t.Helper()
	rewriteConfig(t, be, master, func(c *Config) { c.PackSize = size })
	if got, err := ReadConfig(context.Background(), be); err != nil || got.PackSize != size {
		t.Fatalf("config after rewrite: %v, %+v", err, got)
	}
}

// rewriteConfig changes the config of be and signs it again with master.
func rewriteConfig(t testing.TB, be backend.Backend, master *crypto.MasterKey, change func(*Config)) {
	t.Helper()
	ctx := context.Background()
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	change(cfg)
	body, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := master.Sign(configContext, body)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := json.Marshal(signedConfig{Config: body, Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.TypeConfig, Name: "config"}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.Bytes(signed)); err != nil {
		t.Fatal(err)
	}
}

// memBackend is a backend in memory, for the fuzz targets: it holds the
// bytes under test without touching the disk.
type memBackend = backend.Mem

func newMemBackend() *memBackend { return backend.NewMem() }

// listNames returns the names of the objects of type t.
func listNames(t testing.TB, be backend.Backend, typ backend.Type) []string {
	t.Helper()
	var names []string
	if err := be.List(context.Background(), typ, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

// mustCheck runs a keyed Check and fails the test on any problem.
func mustCheck(t testing.TB, r *Repo, opts CheckOptions) *CheckResult {
	t.Helper()
	res, err := r.Check(context.Background(), opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range res.Problems {
		t.Errorf("check: %s", p)
	}
	return res
}

// mustAudit runs Audit and fails the test on any problem.
func mustAudit(t testing.TB, r *Repo) *AuditReport {
	t.Helper()
	rep, err := r.Audit(context.Background())
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("audit: %s", p)
	}
	return rep
}

// indexedPacks returns every pack the cache (the index files) names, with
// its claimed blobs.
func indexedPacks(t testing.TB, r *Repo) []index.Pack {
	t.Helper()
	c, err := r.openCache(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byPack := map[ID][]pack.Blob{}
	var order []ID
	if err := c.forEachCopy(func(cp blobCopy) error {
		if _, ok := byPack[cp.Pack]; !ok {
			order = append(order, cp.Pack)
		}
		byPack[cp.Pack] = append(byPack[cp.Pack], cp.Blob)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var out []index.Pack
	for _, id := range order {
		out = append(out, index.Pack{ID: id, Blobs: byPack[id]})
	}
	return out
}
