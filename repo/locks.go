package repo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/larder/larder/crypto"
)

// Locks are objects in locks/ that writers only add (a writer's storage
// credentials need not allow deleting): a lock "<id>" is taken by writing
// locks/<id>, kept alive by locks/<id>.r<N> every LockRefresh, and
// released by locks/<id>.done. A lock is active while it has no .done and
// its newest object is younger than LockStale. Ingests take shared locks,
// forget and prune an exclusive one; both sides write their lock first and
// then look for the other kind, so two cannot both go ahead. The master
// removes the objects of finished and stale locks.
const (
	LockRefresh = 5 * time.Minute
	LockStale   = 30 * time.Minute
	maxLockFile = 1 << 12
)

// ErrLocked: another process holds a lock that conflicts.
var ErrLocked = errors.New("repository is locked")

// LockInfo is what a lock object says.
type LockInfo struct {
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`
	Key       string    `json:"key"`
}

// Lock is a lock held by this process.
type Lock struct {
	r      *Repo
	id     string
	info   LockInfo
	stop   chan struct{}
	done   sync.WaitGroup
	mu     sync.Mutex
	seq    int
	err    error     // the first failed refresh
	alive  time.Time // when the last sign of life was stored
	closed bool
}

// ActiveLock is a lock found in the repository.
type ActiveLock struct {
	ID   string
	Info LockInfo
	Last time.Time // newest sign of life
}

// Lock takes a shared (exclusive false) or exclusive lock.
func (r *Repo) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	var rnd [8]byte
	randRead(rnd[:])
	host, _ := os.Hostname()
	l := &Lock{r: r, id: hex.EncodeToString(rnd[:]), stop: make(chan struct{}),
		info: LockInfo{Exclusive: exclusive, Host: host, PID: os.Getpid(), Time: r.now().UTC(), Key: r.KeyID().String()}}
	b, _ := json.Marshal(l.info)
	if err := r.be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: l.id}, backend.Bytes(b)); err != nil {
		return nil, fmt.Errorf("%s: taking a lock: %w", r.be.Location(), err)
	}
	active, err := r.ActiveLocks(ctx)
	if err != nil {
		l.release(context.WithoutCancel(ctx))
		return nil, err
	}
	for _, a := range active {
		if a.ID == l.id {
			continue
		}
		if exclusive || a.Info.Exclusive {
			l.release(context.WithoutCancel(ctx))
			kind := "shared"
			if a.Info.Exclusive {
				kind = "exclusive"
			}
			return nil, fmt.Errorf("%s: %w: %s lock %s held by %s (pid %d) since %s",
				r.be.Location(), ErrLocked, kind, a.ID, a.Info.Host, a.Info.PID, a.Info.Time.Format(time.RFC3339))
		}
	}
	l.alive = r.now()
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

func (l *Lock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.seq++
			b, _ := json.Marshal(LockInfo{Time: l.r.now().UTC()})
			err := l.r.be.Save(context.Background(), backend.Handle{Type: backend.TypeLock, Name: fmt.Sprintf("%s.r%d", l.id, l.seq)}, backend.Bytes(b))
			if err != nil && l.err == nil {
				l.err = err
			}
			if err == nil {
				l.alive = l.r.now()
			}
			l.mu.Unlock()
		}
	}
}

// ReadLock takes a shared lock for a long read (restore, drill, check), so
// that a prune does not remove data under it. On storage that refuses
// writes (read-only or full) it takes none: the read goes ahead, and it is
// the caller's to run no prune meanwhile. The returned function releases
// the lock.
func (r *Repo) ReadLock(ctx context.Context) (func(), error) {
	l, err := r.Lock(ctx, false)
	switch {
	case errors.Is(err, backend.ErrReadOnly), errors.Is(err, backend.ErrNoSpace):
		return func() {}, nil
	case err != nil:
		return nil, err
	}
	return func() { l.Unlock(context.WithoutCancel(ctx)) }, nil
}

// Held reports an error when the lock may have lapsed: its signs of life
// could not be stored for so long that others may take it for stale (and a
// prune may have removed data a writer counted on). Writers check it
// before they commit, prune before it deletes.
func (l *Lock) Held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since := l.r.now().Sub(l.alive); since >= LockStale-LockRefresh {
		return fmt.Errorf("%s: the lock %s may have lapsed: no sign of life stored for %s (%v)",
			l.r.be.Location(), l.id, since.Round(time.Second), l.err)
	}
	return nil
}

// Unlock releases the lock; the master also removes its objects.
func (l *Lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.done.Wait()
	return l.release(ctx)
}

func (l *Lock) release(ctx context.Context) error {
	if l.r.master != nil {
		// The master may delete: remove every object of the lock (with a
		// credential that may not, say it is done instead).
		err := l.r.removeLock(ctx, l.id)
		if !errors.Is(err, backend.ErrReadOnly) {
			return err
		}
	}
	return l.r.be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: l.id + ".done"}, backend.Bytes([]byte("{}")))
}

// checkCanDelete fails when the storage refuses deletes (a writer's
// credential, a read-only mount): master operations that remove objects
// find it out before they change anything. It saves a small object in
// locks/ and removes it.
func (r *Repo) checkCanDelete(ctx context.Context) error {
	var rnd [8]byte
	randRead(rnd[:])
	h := backend.Handle{Type: backend.TypeLock, Name: hex.EncodeToString(rnd[:]) + ".probe"}
	if err := r.be.Save(ctx, h, backend.Bytes([]byte("{}"))); err != nil {
		return fmt.Errorf("%s: %w", r.be.Location(), err)
	}
	if err := r.be.Remove(ctx, h); err != nil {
		return fmt.Errorf("%s: the storage does not let this credential delete (forget, prune and unlock need the master's storage credential): %w", r.be.Location(), err)
	}
	return nil
}

func (r *Repo) removeLock(ctx context.Context, id string) error {
	var names []string
	list(ctx, r.be, backend.TypeLock, func(name string, _ int64) error {
		if name == id || strings.HasPrefix(name, id+".") {
			names = append(names, name)
		}
		return nil
	})
	var first error
	for _, n := range names {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeLock, Name: n}); err != nil && !errors.Is(err, backend.ErrNotFound) && first == nil {
			first = err
		}
	}
	return first
}

// ActiveLocks lists the locks in force.
func (r *Repo) ActiveLocks(ctx context.Context) ([]ActiveLock, error) {
	all, err := r.locks(ctx)
	if err != nil {
		return nil, err
	}
	var out []ActiveLock
	now := r.now()
	for _, l := range all {
		if !l.done && now.Sub(l.Last) < LockStale {
			out = append(out, l.ActiveLock)
		}
	}
	return out, nil
}

type lockState struct {
	ActiveLock
	done    bool
	hasMain bool // the lock's own object was read (not only refreshes)
}

func (r *Repo) locks(ctx context.Context) ([]lockState, error) {
	byID := map[string]*lockState{}
	var order []string
	err := r.be.List(ctx, backend.TypeLock, func(fi backend.FileInfo) error {
		name, size := fi.Name, fi.Size
		id, suffix, _ := strings.Cut(name, ".")
		if suffix == "probe" {
			return nil // checkCanDelete's, not a lock
		}
		s := byID[id]
		if s == nil {
			s = &lockState{ActiveLock: ActiveLock{ID: id}}
			byID[id] = s
			order = append(order, id)
		}
		if suffix == "done" {
			s.done = true
			return nil
		}
		if suffix == "" {
			s.hasMain = true
		}
		if size > maxLockFile {
			return nil // not a lock object: ignored, and removed by the master
		}
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeLock, Name: name}, maxLockFile)
		if err != nil {
			if errors.Is(err, backend.ErrNotFound) {
				return nil // removed meanwhile
			}
			return err
		}
		var info LockInfo
		if json.Unmarshal(b, &info) != nil {
			return nil // unreadable: ignored, and removed by the master
		}
		if suffix == "" {
			s.Info = info
		}
		// A sign of life is dated by the storage when it can tell, not by
		// the writer's clock: a writer running behind would look stale
		// while alive, one running ahead would block prune long after it
		// died.
		last := info.Time
		if !fi.ModTime.IsZero() {
			last = fi.ModTime
		}
		if last.After(s.Last) {
			s.Last = last
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listing locks: %w", r.be.Location(), err)
	}
	out := make([]lockState, 0, len(order))
	for _, id := range order {
		if s := byID[id]; s.hasMain || s.done {
			out = append(out, *s)
		}
	}
	return out, nil
}

// CleanLocks removes the objects of finished and stale locks (master).
func (r *Repo) CleanLocks(ctx context.Context) (int, error) {
	if err := r.need("remove locks", crypto.RoleMaster); err != nil {
		return 0, err
	}
	all, err := r.locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := r.now()
	for _, l := range all {
		if l.done || now.Sub(l.Last) >= LockStale {
			if err := r.removeLock(ctx, l.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// checkLockObjects reports objects in locks/ that are not lock objects.
func (r *Repo) checkLockObjects(ctx context.Context, kr *keyring, res *CheckResult) error {
	return list(ctx, r.be, backend.TypeLock, func(name string, size int64) error {
		res.Objects++
		res.Bytes += size
		return nil
	})
}
