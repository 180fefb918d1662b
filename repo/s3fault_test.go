package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/internal/faultproxy"
	"github.com/larder/larder/internal/s3test"
	"github.com/larder/larder/repo/backend"
)

// Faults on the way to S3: a network that drops and delays connections,
// and a server killed and restarted while an ingest runs. Whatever
// happens, an ingest completes or fails with a clear error, the next one
// completes, every committed snapshot restores bit-exact, check finds
// nothing wrong and no object under a final name is partial.

// faultRetry is the tests' retry policy: DefaultRetry's shape, quicker
// (about 1.1 s of waits in all before an operation fails).
var faultRetry = backend.RetryPolicy{Attempts: 10, Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond}

// s3Retry opens cfg as an ingest does (Limit, then Retry), with the
// tests' retry policy.
func s3Retry(t *testing.T, cfg backend.S3Config) *backend.RetryBackend {
	t.Helper()
	s3, err := backend.OpenS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return backend.Retry(backend.Limit(s3, 4), faultRetry)
}

// tryIngest is ingest that returns its error instead of failing the
// test: the writer is opened on be with key, with its cache in cacheDir
// (kept from run to run, as on a forum server).
func tryIngest(be backend.Backend, key Key, cacheDir, name string, streams ...[]byte) (id ID, err error) {
	ctx := context.Background()
	r, err := Open(ctx, be, key)
	if err != nil {
		return ID{}, err
	}
	r.SetCacheDir(cacheDir)
	defer r.Close()
	w, err := r.NewWriter(ctx)
	if err != nil {
		return ID{}, err
	}
	defer w.Close(ctx)
	m := &Manifest{Name: name}
	h := sha256.New()
	for i, s := range streams {
		h.Write(s)
		class := ClassText
		if i%2 == 1 {
			class = ClassBulk
		}
		sw, err := w.NewStream(ctx, uint8(i+1), class)
		if err != nil {
			return ID{}, err
		}
		if _, err := sw.Write(s); err != nil {
			return ID{}, err
		}
		if err := sw.Close(); err != nil {
			return ID{}, err
		}
		m.Streams = append(m.Streams, sw.Ref())
		m.Size += uint64(len(s))
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return w.Commit(ctx, m, sum)
}

// clearError fails unless err reads as a storage failure a person can act
// on: it names the storage or the object, and why.
func clearError(t *testing.T, err error, location string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
		t.Fatalf("not a clear error: %s", msg)
	}
	if !strings.Contains(msg, location) && !strings.Contains(msg, "data/") && !strings.Contains(msg, "index/") &&
		!strings.Contains(msg, "snapshots/") && !strings.Contains(msg, "locks/") && !strings.Contains(msg, "keys/") &&
		!strings.Contains(msg, "config") {
		t.Fatalf("the error names neither the storage nor an object: %s", msg)
	}
}

// committed lists what a run stored, by snapshot name.
type committed map[string][][]byte

// restoresAllSnapshots checks, through be with the master key and a cold
// cache, that every snapshot in the repository is one of want (a run that
// failed may still have committed its snapshot before its answer was
// lost), that each restores bit-exact, and that every ID in mustHave is
// there.
func restoresAllSnapshots(t *testing.T, be backend.Backend, k keys, want committed, mustHave []ID) {
	t.Helper()
	ctx := context.Background()
	m := open(t, be, k.master)
	snaps, err := m.Snapshots(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ID]bool{}
	for _, s := range snaps {
		seen[s.ID] = true
		streams, ok := want[s.Manifest.Name]
		if !ok {
			t.Fatalf("snapshot %s is named %q, which no run stored", s.ID.Short(), s.Manifest.Name)
		}
		if err := s.Usable(); err != nil {
			t.Fatalf("snapshot %s (%s): %v", s.ID.Short(), s.Manifest.Name, err)
		}
		if len(s.Manifest.Streams) != len(streams) {
			t.Fatalf("snapshot %s (%s): %d streams, not %d", s.ID.Short(), s.Manifest.Name, len(s.Manifest.Streams), len(streams))
		}
		for i, ref := range s.Manifest.Streams {
			if got := readStream(t, m, ref); !bytes.Equal(got, streams[i]) {
				t.Fatalf("snapshot %s (%s) stream %d: %d bytes back, not the %d stored", s.ID.Short(), s.Manifest.Name, i, len(got), len(streams[i]))
			}
		}
	}
	for _, id := range mustHave {
		if !seen[id] {
			t.Fatalf("committed snapshot %s is not listed", id.Short())
		}
	}
}

// checkClean runs the keyless check and the master's check reading every
// chunk, through be (the master's credential, no faults).
func checkClean(t *testing.T, be backend.Backend, k keys) {
	t.Helper()
	res, err := CheckKeyless(context.Background(), be)
	if err != nil {
		t.Fatalf("keyless check: %v", err)
	}
	for _, p := range res.Problems {
		t.Errorf("keyless check: %s", p)
	}
	mustCheck(t, open(t, be, k.master), CheckOptions{ReadData: 1})
}

// noPartialFiles walks the server's own files of prefix (behind its S3
// listing) and fails if a content-named object there does not hash to its
// name: a partial upload left under a final name.
func noPartialFiles(t *testing.T, srv *s3test.Server, prefix string) {
	t.Helper()
	root := srv.ObjectPath(prefix)
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		typ, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		for _, ct := range contentNamed {
			if string(ct) != typ {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != d.Name() {
				t.Errorf("%s: %d bytes that do not hash to the name (a partial object)", rel, len(b))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no content-named object under %s", root)
	}
}

// TestS3FaultyNetwork ingests nights through a proxy that drops, stalls
// and delays connections at random, with the forum server's credential;
// in one night the proxy refuses every connection once a pack is stored,
// until the run gave up.
func TestS3FaultyNetwork(t *testing.T) {
	srv := sharedS3(t)
	prefix := fmt.Sprintf("fault-%d", s3Prefix.Add(1))
	master := s3Retry(t, srv.Config(prefix, false))
	k := newRepoOn(t, master)
	setPackSize(t, master, k.master, 1<<20)

	px, err := faultproxy.New(srv.Endpoint, faultproxy.Config{
		Seed:       1,
		DropRate:   0.25,
		StallRate:  0.03,
		DropWithin: 2 << 20,
		DelayRate:  0.02,
		MaxDelay:   20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	var mu sync.Mutex
	retried := 0
	report := func(string, backend.Handle, error, time.Duration) { mu.Lock(); retried++; mu.Unlock() }
	viaProxy := func(writer bool) backend.Backend {
		cfg := srv.Config(prefix, writer)
		cfg.Endpoint = px.Addr()
		// A stalled connection costs this much (the default is minutes).
		cfg.StallTimeout = 250 * time.Millisecond
		s3, err := backend.OpenS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return backend.Limit(s3, 4)
	}
	retry := func(be backend.Backend) *backend.RetryBackend {
		r := backend.Retry(be, faultRetry)
		r.Report = report
		return r
	}
	limited := viaProxy(true)
	cache := t.TempDir()

	const cutNight = 2
	want := committed{}
	var ids []ID
	failed := 0
	for n := 1; n <= 3; n++ {
		name := fmt.Sprintf("night-%d", n)
		streams := nightStreams(n)
		want[name] = streams
		writer := retry(limited)
		if n == cutNight {
			// The network goes away once a pack is stored.
			writer = retry(&saveWatch{Backend: limited, onPack: func() { px.Refuse(time.Hour); px.CutAll() }})
		}
		id, err := tryIngest(writer, k.write, cache, name, streams...)
		if n == cutNight {
			if err == nil {
				t.Fatalf("%s completed with every connection refused after its first pack", name)
			}
			px.Refuse(0)
		}
		if err != nil {
			// A run fails when the faults outlast its retries; it says
			// so, and the next run completes.
			failed++
			t.Logf("%s failed: %v", name, err)
			clearError(t, err, writer.Location())
			if id, err = tryIngest(retry(limited), k.write, cache, name, streams...); err != nil {
				t.Fatalf("%s, the run after a failed one: %v", name, err)
			}
		}
		ids = append(ids, id)
	}
	st := px.Stats()
	t.Logf("proxy during the ingests: %+v; %d operations retried, %d runs failed", st, retried, failed)
	if st.Drops == 0 || st.DropsBy[faultproxy.Up] == 0 || st.DropsBy[faultproxy.Down] == 0 || st.Stalls == 0 || st.Delays == 0 || st.Refused == 0 {
		t.Fatalf("the proxy did not cut connections both ways, stall them, delay chunks and refuse connections: %+v", st)
	}
	if retried == 0 {
		t.Fatal("no operation was retried")
	}

	// Through the faulty network and directly, with a cold cache.
	restoresAllSnapshots(t, retry(viaProxy(false)), k, want, ids)
	after := px.Stats()
	t.Logf("proxy after the restores: %+v", after)
	if after.Drops == st.Drops {
		t.Fatal("no connection was cut while restoring through the proxy")
	}
	restoresAllSnapshots(t, master, k, want, ids)
	checkClean(t, master, k)
	noPartialFiles(t, srv, prefix)
}

// saveWatch calls onPack (once) when a pack has been stored.
type saveWatch struct {
	backend.Backend
	once   sync.Once
	onPack func()
}

func (s *saveWatch) Save(ctx context.Context, h backend.Handle, src backend.Source) error {
	err := s.Backend.Save(ctx, h, src)
	if err == nil && h.Type == backend.TypeData {
		s.once.Do(s.onPack)
	}
	return err
}

func (s *saveWatch) Unwrap() backend.Backend { return s.Backend }

// TestS3ServerKilledMidIngest kills the S3 server (SIGKILL) once an
// ingest of several packs has stored its first, and starts it again: at
// once (the run may ride it out on its retries), or only after the run
// gave up.
func TestS3ServerKilledMidIngest(t *testing.T) {
	srv, err := s3test.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	big := [][]byte{sqlLike(5, 1<<20), randBytes(7, 3<<20)}
	for _, tc := range []struct {
		name string
		// restartFirst: restart before the run ends (else after).
		restartFirst bool
	}{{"restarted at once", true}, {"down past the retries", false}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("kill-%t", tc.restartFirst)
			master := s3Retry(t, srv.Config(prefix, false))
			k := newRepoOn(t, master)
			setPackSize(t, master, k.master, 1<<20)
			s3w, err := backend.OpenS3(srv.Config(prefix, true))
			if err != nil {
				t.Fatal(err)
			}
			stored := make(chan struct{})
			watch := &saveWatch{Backend: backend.Limit(s3w, 4), onPack: func() { close(stored) }}
			writer := backend.Retry(watch, faultRetry)
			cache := t.TempDir()
			want := committed{"killed": big, "after": big}

			type result struct {
				id  ID
				err error
			}
			done := make(chan result, 1)
			go func() {
				id, err := tryIngest(writer, k.write, cache, "killed", big...)
				done <- result{id, err}
			}()
			var first result
			select {
			case <-stored:
			case first = <-done:
				t.Fatalf("the run ended before it stored a pack: %v", first.err)
			}
			t0 := time.Now()
			srv.Kill()
			if tc.restartFirst {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			}
			first = <-done
			t.Logf("first run ended %v after the kill", time.Since(t0))
			if !tc.restartFirst {
				if first.err == nil {
					t.Fatal("a run completed with the server down")
				}
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			}
			var ids []ID
			if first.err != nil {
				t.Logf("the run failed: %v", first.err)
				clearError(t, first.err, writer.Location())
			} else {
				t.Logf("the run rode out the restart")
				ids = append(ids, first.id)
			}
			id, err := tryIngest(writer, k.write, cache, "after", big...)
			if err != nil {
				t.Fatalf("the next run: %v", err)
			}
			ids = append(ids, id)
			restoresAllSnapshots(t, master, k, want, ids)
			checkClean(t, master, k)
			noPartialFiles(t, srv, prefix)
		})
	}
}
