// Package backendtest is the conformance suite every backend.Backend
// passes (restic's backend/test is the model): the local folder, S3, memory
// and the wrappers, each run from its own package's tests.
package backendtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
)

// Options say what a backend under test offers.
type Options struct {
	// ModTime: the backend dates objects (FileInfo.ModTime is set).
	ModTime bool
	// Large is the size of the largest object saved (a multipart upload
	// for S3); 0 means 3 MiB.
	Large int
	// Sequential: the backend does not promise one winner when two saves
	// of one name race (a folder on a file system without
	// RENAME_NOREPLACE checks the name, then renames). larder never saves
	// one name from two writers at once: its names are content hashes of
	// one session's bytes, or random. A save over an object that is there
	// is refused all the same.
	Sequential bool
}

// Run runs the suite. open returns a fresh, empty backend each time it is
// called.
func Run(t *testing.T, open func(t *testing.T) backend.Backend, opts Options) {
	if opts.Large == 0 {
		opts.Large = 3 << 20
	}
	tests := []struct {
		name string
		fn   func(*testing.T, backend.Backend, Options)
	}{
		{"SaveLoad", testSaveLoad},
		{"Ranges", testRanges},
		{"NeverReplaces", testNeverReplaces},
		{"Missing", testMissing},
		{"List", testList},
		{"Remove", testRemove},
		{"ConcurrentSaveOneName", testConcurrentSave},
		{"FailedSaveStoresNothing", testFailedSave},
		{"CanceledContext", testCanceled},
		{"LoadCallbackError", testLoadCallbackError},
		{"InvalidNames", testInvalidNames},
	}
	for _, tc := range tests {
		if opts.Sequential && tc.name == "ConcurrentSaveOneName" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			be := open(t)
			t.Cleanup(func() {
				if err := be.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, be, opts)
		})
	}
}

// Data returns n pseudo-random bytes of a seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Name is the content name of b (its SHA-256 in hex).
func Name(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func load(t *testing.T, be backend.Backend, h backend.Handle, off, n int64) []byte {
	t.Helper()
	var got []byte
	err := be.Load(context.Background(), h, off, n, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatalf("load %s %d+%d: %v", h, off, n, err)
	}
	return got
}

func save(t *testing.T, be backend.Backend, h backend.Handle, b []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, backend.Bytes(b)); err != nil {
		t.Fatalf("save %s (%d bytes): %v", h, len(b), err)
	}
}

func testSaveLoad(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	for i, n := range []int{0, 1, 4095, 64 << 10, opts.Large} {
		b := Data(uint64(i), n)
		h := backend.Handle{Type: backend.TypeData, Name: Name(b)}
		before := time.Now()
		save(t, be, h, b)
		after := time.Now()
		fi, err := be.Stat(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size != int64(n) || fi.Name != h.Name {
			t.Errorf("stat %s: %+v, want size %d", h, fi, n)
		}
		if opts.ModTime {
			// Storage clocks may differ from ours a little and keep whole
			// seconds.
			if fi.ModTime.Before(before.Add(-time.Minute)) || fi.ModTime.After(after.Add(time.Minute)) {
				t.Errorf("stat %s: stored at %v, saved between %v and %v", h, fi.ModTime, before, after)
			}
		} else if !fi.ModTime.IsZero() {
			t.Errorf("stat %s: a backend without times said %v", h, fi.ModTime)
		}
		if got := load(t, be, h, 0, 0); !bytes.Equal(got, b) {
			t.Errorf("load %s: %d bytes back, saved %d (or they differ)", h, len(got), n)
		}
	}
	// The config has its own name.
	cfg := backend.Handle{Type: backend.TypeConfig, Name: "config"}
	save(t, be, cfg, []byte("{}"))
	if got := load(t, be, cfg, 0, 0); string(got) != "{}" {
		t.Errorf("config: %q", got)
	}
}

func testRanges(t *testing.T, be backend.Backend, opts Options) {
	b := Data(7, 100000)
	h := backend.Handle{Type: backend.TypeIndex, Name: Name(b)}
	save(t, be, h, b)
	for _, r := range [][2]int64{{0, 1}, {0, 100000}, {1, 99999}, {99999, 1}, {4096, 4096}, {50000, 0}, {90000, 20000}} {
		end := int64(len(b))
		if r[1] > 0 {
			end = min(end, r[0]+r[1])
		}
		if got := load(t, be, h, r[0], r[1]); !bytes.Equal(got, b[r[0]:end]) {
			t.Errorf("range %d+%d: %d bytes, want %d", r[0], r[1], len(got), end-r[0])
		}
	}
	got, err := backend.ReadRange(context.Background(), be, h, 10, 20, nil)
	if err != nil || !bytes.Equal(got, b[10:30]) {
		t.Errorf("ReadRange: %v", err)
	}
	if _, err := backend.ReadRange(context.Background(), be, h, 99990, 20, nil); err == nil {
		t.Error("ReadRange past the end succeeded")
	}
}

func testNeverReplaces(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	for _, typ := range []backend.Type{backend.TypeData, backend.TypeSnapshot, backend.TypeLock, backend.TypeKey} {
		h := backend.Handle{Type: typ, Name: "0123456789abcdef0123456789abcdef"}
		save(t, be, h, []byte("first"))
		err := be.Save(ctx, h, backend.Bytes([]byte("second, longer")))
		if !errors.Is(err, backend.ErrExists) {
			t.Errorf("%s: saving over an object: %v, want ErrExists", h, err)
		}
		if got := load(t, be, h, 0, 0); string(got) != "first" {
			t.Errorf("%s: the object now holds %q", h, got)
		}
	}
}

func testMissing(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	h := backend.Handle{Type: backend.TypeSnapshot, Name: Name([]byte("nothing"))}
	if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("stat of a missing object: %v", err)
	}
	err := be.Load(ctx, h, 0, 0, func(io.Reader) error { return nil })
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("load of a missing object: %v", err)
	}
	if _, err := backend.ReadAll(ctx, be, h, 100); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("ReadAll of a missing object: %v", err)
	}
	n := 0
	if err := be.List(ctx, backend.TypeDrill, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("listing an empty type: %d objects, %v", n, err)
	}
}

func testList(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	want := map[backend.Type]map[string]int64{}
	for i := 0; i < 40; i++ {
		typ := []backend.Type{backend.TypeData, backend.TypeIndex, backend.TypeSnapshot, backend.TypeLock}[i%4]
		b := Data(uint64(100+i), i*37)
		name := Name(b)
		if typ == backend.TypeLock {
			name = fmt.Sprintf("%016x.r%d", i, i)
		}
		save(t, be, backend.Handle{Type: typ, Name: name}, b)
		if want[typ] == nil {
			want[typ] = map[string]int64{}
		}
		want[typ][name] = int64(len(b))
	}
	for typ, objs := range want {
		var names []string
		err := be.List(ctx, typ, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			if size, ok := objs[fi.Name]; !ok {
				t.Errorf("%s: listed %s, which was not saved there", typ, fi.Name)
			} else if size != fi.Size {
				t.Errorf("%s/%s: listed with %d bytes, saved %d", typ, fi.Name, fi.Size, size)
			}
			if opts.ModTime && fi.ModTime.IsZero() {
				t.Errorf("%s/%s: listed without a time", typ, fi.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != len(objs) || !sort.StringsAreSorted(names) {
			t.Errorf("%s: listed %d objects (sorted: %v), saved %d", typ, len(names), sort.StringsAreSorted(names), len(objs))
		}
	}
	// An error from fn stops the listing and is returned.
	stop := errors.New("stop")
	n := 0
	err := be.List(ctx, backend.TypeData, func(backend.FileInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d objects", err, n)
	}
}

func testRemove(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	b := Data(3, 1000)
	h := backend.Handle{Type: backend.TypeData, Name: Name(b)}
	save(t, be, h, b)
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("stat after remove: %v", err)
	}
	if err := be.List(ctx, backend.TypeData, func(fi backend.FileInfo) error {
		t.Errorf("listed %s after its removal", fi.Name)
		return nil
	}); err != nil {
		t.Errorf("list: %v", err)
	}
	if err := be.Remove(ctx, h); err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("removing a missing object: %v", err)
	}
	// A removed name can be saved again.
	save(t, be, h, b)
}

func testConcurrentSave(t *testing.T, be backend.Backend, opts Options) {
	h := backend.Handle{Type: backend.TypeLock, Name: "0000000000000001"}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = be.Save(context.Background(), h, backend.Bytes(Data(uint64(i), 50000)))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("saves %d and %d of one name both succeeded", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, backend.ErrExists):
			t.Errorf("save %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no save succeeded")
	}
	if got := load(t, be, h, 0, 0); !bytes.Equal(got, Data(uint64(won), 50000)) {
		t.Error("the stored object is not the winner's")
	}
}

// failingSource gives some bytes, then an error.
type failingSource struct {
	backend.Source
	left int
}

func (f *failingSource) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errors.New("source failed")
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.Source.Read(p)
	f.left -= n
	return n, err
}

func testFailedSave(t *testing.T, be backend.Backend, opts Options) {
	ctx := context.Background()
	b := Data(11, 200000)
	h := backend.Handle{Type: backend.TypeData, Name: Name(b)}
	if err := be.Save(ctx, h, &failingSource{Source: backend.Bytes(b), left: 100000}); err == nil {
		t.Fatal("a save whose source failed succeeded")
	}
	if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("after a failed save, stat says %v", err)
	}
	if err := be.List(ctx, backend.TypeData, func(fi backend.FileInfo) error {
		t.Errorf("a failed save left %s", fi.Name)
		return nil
	}); err != nil {
		t.Errorf("list: %v", err)
	}
	// The name is free.
	save(t, be, h, b)
}

func testCanceled(t *testing.T, be backend.Backend, opts Options) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Data(12, 100000)
	h := backend.Handle{Type: backend.TypeData, Name: Name(b)}
	if err := be.Save(ctx, h, backend.Bytes(b)); err == nil {
		t.Error("a save with a canceled context succeeded")
	}
	if _, err := be.Stat(context.Background(), h); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("after a canceled save, stat says %v", err)
	}
}

func testLoadCallbackError(t *testing.T, be backend.Backend, opts Options) {
	b := Data(13, 1000)
	h := backend.Handle{Type: backend.TypeData, Name: Name(b)}
	save(t, be, h, b)
	mine := backend.Permanent(errors.New("mine"))
	calls := 0
	err := be.Load(context.Background(), h, 0, 0, func(io.Reader) error { calls++; return mine })
	if !errors.Is(err, mine) || calls != 1 {
		t.Errorf("fn's permanent error: %v after %d calls", err, calls)
	}
}

func testInvalidNames(t *testing.T, be backend.Backend, opts Options) {
	for _, h := range []backend.Handle{
		{Type: backend.TypeData, Name: ""},
		{Type: backend.TypeData, Name: "../config"},
		{Type: backend.TypeSnapshot, Name: "a/b"},
		{Type: backend.TypeIndex, Name: ".."},
		{Type: "nope", Name: "x"},
	} {
		if err := be.Save(context.Background(), h, backend.Bytes([]byte("x"))); err == nil {
			t.Errorf("saved %q/%q", h.Type, h.Name)
		}
	}
}
