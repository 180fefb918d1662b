package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/crypto"
)

// Helpers shared by the crash, fuzz, compatibility and regression tests.

// setPackSize rewrites the config of be (signed by master) with another
// pack size: small packs make an ingest of a few MB write several of them.
// ReadConfig accepts 1 MiB and up.
func setPackSize(t testing.TB, be *Local, master *crypto.MasterKey, size int) {
	t.Helper()
	rewriteConfig(t, be, master, func(c *Config) { c.PackSize = size })
	if got, err := ReadConfig(context.Background(), be); err != nil || got.PackSize != size {
		t.Fatalf("config after rewrite: %v, %+v", err, got)
	}
}

// rewriteConfig changes the config of be and signs it again with master.
func rewriteConfig(t testing.TB, be *Local, master *crypto.MasterKey, change func(*Config)) {
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
	h := Handle{TypeConfig, "config"}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, bytes.NewReader(signed)); err != nil {
		t.Fatal(err)
	}
}

// memBackend is a Backend in memory, for the fuzz targets: it holds the
// bytes under test without touching the disk.
type memBackend struct {
	mu    sync.Mutex
	objs  map[Handle][]byte
	times map[Handle]time.Time // ModTime; absent: unknown
	loads int                  // Load calls
}

func newMemBackend() *memBackend {
	return &memBackend{objs: map[Handle][]byte{}, times: map[Handle]time.Time{}}
}

func (m *memBackend) Location() string { return "mem" }

func (m *memBackend) put(h Handle, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[h] = bytes.Clone(b)
}

func (m *memBackend) Save(ctx context.Context, h Handle, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[h]; ok {
		return fmt.Errorf("%w: %s", ErrExists, h)
	}
	m.objs[h] = b
	return nil
}

// Load hands out a reader over exactly the requested range: a parser that
// reads past what it asked for gets io.EOF, not the neighbouring bytes.
func (m *memBackend) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	b, ok := m.objs[h]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	if offset < 0 || length < 0 || offset > int64(len(b)) {
		return nil, fmt.Errorf("%s: range %d+%d outside %d bytes", h, offset, length, len(b))
	}
	b = b[offset:]
	if length > 0 && length < int64(len(b)) {
		b = b[:length]
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(b))), nil
}

func (m *memBackend) Stat(ctx context.Context, h Handle) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[h]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	return int64(len(b)), nil
}

func (m *memBackend) List(ctx context.Context, t Type, fn func(string, int64) error) error {
	m.mu.Lock()
	var names []string
	sizes := map[string]int64{}
	for h, b := range m.objs {
		if h.Type == t {
			names = append(names, h.Name)
			sizes[h.Name] = int64(len(b))
		}
	}
	m.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if err := fn(n, sizes[n]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memBackend) Remove(ctx context.Context, h Handle) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[h]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	delete(m.objs, h)
	return nil
}

func (m *memBackend) ModTime(ctx context.Context, h Handle) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[h]; !ok {
		return time.Time{}, fmt.Errorf("%w: %s", ErrNotFound, h)
	}
	t, ok := m.times[h]
	if !ok {
		return time.Time{}, fmt.Errorf("no time for %s", h)
	}
	return t, nil
}

// listNames returns the names of the objects of type t.
func listNames(t testing.TB, be Backend, typ Type) []string {
	t.Helper()
	var names []string
	if err := be.List(context.Background(), typ, func(n string, _ int64) error {
		names = append(names, n)
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
