package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"
)

// Locks: clocks that disagree, killed and dead holders, oversized lock
// objects, a lapsed lock, and commits of one key that meet.

// TestLockOfWriterWithSlowClock: a writer whose clock runs an hour behind
// wrote lock times that looked stale to everyone else, so a prune could
// take its exclusive lock while the ingest was running and delete packs
// the ingest had deduplicated against. Liveness now comes from the
// storage's time of the lock objects when the backend knows it.
func TestLockOfWriterWithSlowClock(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	w.now = func() time.Time { return time.Now().Add(-time.Hour) }
	lock, err := w.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)
	m := open(t, be, k.master)
	active, err := m.ActiveLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 {
		t.Errorf("active locks %+v, want the writer's", active)
	}
	if x, err := m.Lock(ctx, true); !errors.Is(err, ErrLocked) {
		if x != nil {
			x.Unlock(ctx)
		}
		t.Fatalf("exclusive lock beside a live ingest (slow clock): %v", err)
	}
}

// TestLockOfKilledWriterWithFastClock: a writer whose clock ran a year
// ahead and that was killed left a lock that stayed "active" for a year,
// refusing every forget and prune. It is stale staleAfter after it was
// stored.
func TestLockOfKilledWriterWithFastClock(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	w.now = func() time.Time { return time.Now().AddDate(1, 0, 0) }
	if _, err := w.Lock(ctx, false); err != nil { // never unlocked: killed
		t.Fatal(err)
	}
	m := open(t, be, k.master)
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 1 || active[0].Info.Exclusive {
		t.Fatalf("right after the kill: %+v %v, want one shared lock", active, err)
	}
	m.now = func() time.Time { return time.Now().Add(staleAfter + time.Minute) }
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 0 {
		t.Fatalf("%v after the kill: active locks %+v %v", staleAfter, active, err)
	}
	x, err := m.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive lock after the writer's lock went stale: %v", err)
	}
	x.Unlock(ctx)
	if n, err := m.CleanLocks(ctx); err != nil || n != 1 {
		t.Fatalf("CleanLocks removed %d: %v", n, err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 0 {
		t.Fatalf("lock objects left: %v", names)
	}
}

// TestOversizedLockObject: lock objects are plaintext anyone with storage
// access writes; one over maxLockFile made every listing of locks fail, so
// no ingest, forget or prune could take a lock and CleanLocks could not
// remove it. It is treated like any unreadable lock object: ignored, and
// removed by the master.
func TestOversizedLockObject(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	big, _ := json.Marshal(LockInfo{Host: string(bytes.Repeat([]byte("x"), 2*maxLockFile)), Time: time.Now()})
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: "0123456789abcdef"}, backend.Bytes(big)); err != nil {
		t.Fatal(err)
	}
	w := open(t, be, k.write)
	ingest(t, w, "after a big lock object", randBytes(1, 10_000))
	m := open(t, be, k.master)
	m.now = func() time.Time { return time.Now().Add(staleAfter + time.Minute) }
	if _, err := m.CleanLocks(ctx); err != nil {
		t.Fatal(err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 0 {
		t.Fatalf("lock objects left: %v", names)
	}
}

// TestLapsedLockRefusesCommit: a failed lock refresh used to be recorded
// and never looked at, so an ingest whose lock others took for stale (and
// a prune may have acted on) still committed. Now it refuses.
func TestLapsedLockRefusesCommit(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	r := open(t, be, k.write)
	w, err := r.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if _, _, err := w.Add(ctx, pack.BlobData, randBytes(3, 1000)); err != nil {
		t.Fatal(err)
	}
	// No sign of life stored for staleAfter: the refreshes failed.
	r.now = func() time.Time { return time.Now().Add(staleAfter) }
	if _, err := w.Commit(ctx, &Manifest{Name: "late"}, [32]byte{3}); err == nil || !strings.Contains(err.Error(), "may have lapsed") {
		t.Fatalf("commit after the lock lapsed: %v", err)
	}
	snaps, err := open(t, be, k.audit).Snapshots(ctx, true)
	if err != nil || len(snaps) != 0 {
		t.Fatalf("%d snapshots after a refused commit (%v)", len(snaps), err)
	}
}

// TestLockOfDeadProcessOnThisMachine: a kill -9 of a prune (or an ingest)
// left a lock that blocked everything for 30 minutes although its process
// was gone from the same machine. A lock whose host and boot are this
// machine's and whose process is gone is stale at once; one of another
// machine is judged by its age.
func TestLockOfDeadProcessOnThisMachine(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	m := open(t, be, k.master)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid // exited and reaped
	host, _ := os.Hostname()
	for i, info := range []LockInfo{
		{ID: "00000000000000d1", Exclusive: true, Host: host, PID: dead, Boot: bootID(), Time: time.Now().UTC(), Key: k.master.ID.String()},
		{ID: "00000000000000d2", Exclusive: true, Host: host, PID: os.Getpid(), Start: 1, Boot: bootID(), Time: time.Now().UTC(), Key: k.master.ID.String()},
	} {
		b, err := m.signLock(info)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: info.ID}, backend.Bytes(b)); err != nil {
			t.Fatalf("lock %d: %v", i, err)
		}
	}
	// The first's process is gone; the second's ID is alive but started
	// at another time (a reused process ID).
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 0 {
		t.Fatalf("locks of processes gone: %+v %v", active, err)
	}
	// The same lock from another machine counts until it is stale.
	info := LockInfo{ID: "00000000000000d3", Exclusive: true, Host: "another-machine", PID: dead, Time: time.Now().UTC(), Key: k.master.ID.String()}
	b, err := m.signLock(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: info.ID}, backend.Bytes(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, be, k.write).Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("another machine's fresh exclusive lock did not count: %v", err)
	}
	// unlock removes the two of gone processes and the writer's released
	// one; the other machine's stays.
	if n, err := m.Unlock(ctx, false); err != nil || n != 3 {
		t.Fatalf("unlock removed %d locks: %v", n, err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 1 || names[0] != info.ID {
		t.Fatalf("after unlock: %v", names)
	}
}

// TestConcurrentCommitsOfOneKey: two ingests on one machine with the same
// write key that commit at the same time (an overlapping cron run) take
// turns, so they do not both take the next place in the key's chain (which
// Audit would report as a fork forever after). The second commit starts
// while the first is saving its snapshot.
func TestConcurrentCommitsOfOneKey(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	r1, r2 := open(t, be, k.write), open(t, be, k.write)
	r2.SetCacheDir(r1.cacheDir) // one machine, one user
	w2, err := r2.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	if _, _, err := w2.Add(ctx, pack.BlobData, randBytes(2, 1000)); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	var once sync.Once
	hooked := backend.Fault(be, 0, 0)
	hooked.Hook = func(op string, h backend.Handle) error {
		if op == "save" && h.Type == backend.TypeSnapshot {
			once.Do(func() {
				go func() {
					_, err := w2.Commit(ctx, &Manifest{Name: "second"}, [32]byte{2})
					second <- err
				}()
				// Unserialised, the second commit reads the chain head
				// now, before the first snapshot is saved.
				time.Sleep(300 * time.Millisecond)
			})
		}
		return nil
	}
	r1.be = hooked
	w1, err := r1.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close(ctx)
	if _, err := w1.Commit(ctx, &Manifest{Name: "first"}, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	mustAudit(t, open(t, be, k.audit))
}
