package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
)

// Locks are objects in locks/ that writers only add (a writer's storage
// credential need not allow deleting): a lock "<id>" is taken by writing
// locks/<id>, kept alive by locks/<id>.r<N> every lockRefresh, and
// released by locks/<id>.done. Ingests, restores, drills and checks take
// shared locks, forget and prune an exclusive one; both sides write their
// lock first and then look for the other kind, so two cannot both go
// ahead. The master removes the objects of finished and stale locks.
//
// Locks are hints, not authority (docs/FORMAT.md, "Locks"):
//
//   - every lock object is signed by its holder's key; an unsigned or
//     forged one is ignored (and removed by the master), so the storage
//     provider cannot lock anyone out;
//   - an exclusive lock counts only when the master signed it: no writer
//     can hold off a restore;
//   - a lock is stale when its newest object is older than staleAfter (by
//     the storage's clock), or at once when its process is gone from this
//     very machine;
//   - a key's shared locks hold off the master for at most MaxLockWait
//     after the master first found them in its way (its own record), and
//     a writer whose lock is that old refuses to commit.
const (
	lockRefresh = 5 * time.Minute
	staleAfter  = 30 * time.Minute
	// MaxLockWait bounds how long one key's shared locks hold off forget
	// and prune.
	MaxLockWait = 12 * time.Hour
	maxLockFile = 1 << 12
	lockContext = crypto.SigContext("larder lock v1")
)

// ErrLocked: another process holds a lock that conflicts.
var ErrLocked = errors.New("repository is locked")

// LockInfo is what a lock object says.
type LockInfo struct {
	ID        string    `json:"id"`
	Exclusive bool      `json:"exclusive,omitempty"`
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Start     uint64    `json:"start,omitempty"` // the process's start time (Linux: clock ticks since boot)
	Boot      string    `json:"boot,omitempty"`  // the machine's boot ID (Linux)
	Time      time.Time `json:"time"`
	Key       string    `json:"key"`
	Seq       int       `json:"seq,omitempty"`  // a refresh's number
	Done      bool      `json:"done,omitempty"` // the release
}

// signedLock is a lock object: a LockInfo signed by its holder's key.
type signedLock struct {
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
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
	taken  time.Time
	closed bool
}

// ActiveLock is a lock found in the repository.
type ActiveLock struct {
	ID   string
	Info LockInfo
	Last time.Time // newest sign of life
}

// signLock encodes and signs a lock object with the repository's key.
func (r *Repo) signLock(info LockInfo) ([]byte, error) {
	body, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	sig, err := r.key.Sign(lockContext, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedLock{Body: body, Sig: sig})
}

// SetRetryLock makes Lock retry for up to d while the repository is
// locked (restic's --retry-lock).
func (r *Repo) SetRetryLock(d time.Duration) { r.retryLock = d }

// Lock takes a shared (exclusive false) or exclusive lock, retrying for
// the time SetRetryLock gave.
func (r *Repo) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	deadline := time.Now().Add(r.retryLock)
	wait := time.Second
	for {
		l, err := r.tryLock(ctx, exclusive)
		if err == nil || !errors.Is(err, ErrLocked) || !time.Now().Add(wait).Before(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

func (r *Repo) tryLock(ctx context.Context, exclusive bool) (*Lock, error) {
	var rnd [8]byte
	_, _ = randRead(rnd[:]) // crypto/rand.Read never fails (Go 1.24)
	host, _ := os.Hostname()
	l := &Lock{r: r, id: hex.EncodeToString(rnd[:]), stop: make(chan struct{}), taken: r.now()}
	l.info = LockInfo{ID: l.id, Exclusive: exclusive, Host: host, PID: os.Getpid(), Time: r.now().UTC(), Key: r.KeyID().String()}
	l.info.Start, l.info.Boot = processStart(os.Getpid()), bootID()
	b, err := r.signLock(l.info)
	if err != nil {
		return nil, err
	}
	if err := r.be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: l.id}, backend.Bytes(b)); err != nil {
		return nil, fmt.Errorf("%s: taking a lock: %w", r.be.Location(), err)
	}
	active, err := r.ActiveLocks(ctx)
	if err != nil {
		l.releaseWarn(context.WithoutCancel(ctx))
		return nil, err
	}
	blocking := map[string][]ActiveLock{}
	for _, a := range active {
		if a.ID != l.id && (exclusive || a.Info.Exclusive) {
			blocking[a.Info.Key] = append(blocking[a.Info.Key], a)
		}
	}
	if exclusive && r.master != nil {
		r.boundLockWait(blocking)
	}
	for _, locks := range blocking {
		a := locks[0]
		l.releaseWarn(context.WithoutCancel(ctx))
		kind := "shared"
		if a.Info.Exclusive {
			kind = "exclusive"
		}
		return nil, fmt.Errorf("%s: %w: %s lock %s of key %s held by %s (pid %d) since %s; larder unlock removes stale locks",
			r.be.Location(), ErrLocked, kind, a.ID, shortKey(a.Info.Key), a.Info.Host, a.Info.PID, a.Info.Time.Format(time.RFC3339))
	}
	l.alive = r.now()
	l.done.Add(1)
	go l.refresh()
	return l, nil
}

func shortKey(k string) string {
	if len(k) > 8 {
		return k[:8]
	}
	return k
}

// boundLockWait drops from blocking the shared locks of keys that have
// held off this master for MaxLockWait since it first found them in its
// way (the master's own record, in its cache): a writer cannot keep forget
// and prune waiting for ever by taking lock after lock.
func (r *Repo) boundLockWait(blocking map[string][]ActiveLock) {
	c, err := r.localCache()
	if err != nil {
		return
	}
	now := r.now()
	for key, locks := range blocking {
		if locks[0].Info.Exclusive {
			continue // the master's own: never bounded
		}
		first, err := c.lockWait([]byte(key), true, now)
		if err != nil {
			continue
		}
		if now.Sub(first) >= MaxLockWait {
			r.warn("locks of key "+key, fmt.Sprintf("ignored: they have held off forget and prune since %s (more than %s)", first.Format(time.RFC3339), MaxLockWait))
			delete(blocking, key)
		}
	}
	// Keys not in the way now start afresh next time.
	if err := c.clearLockWaits(func(key string) bool { return blocking[key] != nil }); err != nil {
		r.warn("the cache", fmt.Sprintf("lock waits not updated: %v", err))
	}
}

func (l *Lock) refresh() {
	defer l.done.Done()
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.seq++
			b, err := l.r.signLock(LockInfo{ID: l.id, Seq: l.seq, Time: l.r.now().UTC(), Key: l.info.Key})
			if err == nil {
				err = l.r.be.Save(context.Background(), backend.Handle{Type: backend.TypeLock, Name: fmt.Sprintf("%s.r%d", l.id, l.seq)}, backend.Bytes(b))
			}
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
	return func() { l.unlockWarn(context.WithoutCancel(ctx)) }, nil
}

// Held reports an error when the lock may have lapsed: its signs of life
// could not be stored for so long that others may take it for stale (and a
// prune may have removed data a writer counted on), or a shared lock is so
// old that the master no longer waits for it. Writers check it before they
// commit, prune before it deletes.
func (l *Lock) Held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.r.now()
	if since := now.Sub(l.alive); since >= staleAfter-lockRefresh {
		return fmt.Errorf("%s: the lock %s may have lapsed: no sign of life stored for %s (%v)",
			l.r.be.Location(), l.id, since.Round(time.Second), l.err)
	}
	if age := now.Sub(l.taken); !l.info.Exclusive && age >= MaxLockWait {
		return fmt.Errorf("%s: the lock %s is %s old, longer than forget and prune wait for it (%s): run again", l.r.be.Location(), l.id, age.Round(time.Minute), MaxLockWait)
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

// unlockWarn is Unlock for a deferred call: a lock that cannot be removed
// is reported as a warning (it goes stale; larder unlock removes it).
func (l *Lock) unlockWarn(ctx context.Context) {
	if err := l.Unlock(ctx); err != nil {
		l.r.warn("locks/"+l.id, fmt.Sprintf("not removed: %v (it goes stale; larder unlock removes it)", err))
	}
}

// releaseWarn is release for a lock given up on: a failure is a warning.
func (l *Lock) releaseWarn(ctx context.Context) {
	if err := l.release(ctx); err != nil {
		l.r.warn("locks/"+l.id, fmt.Sprintf("not removed: %v (it goes stale; larder unlock removes it)", err))
	}
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
	b, err := l.r.signLock(LockInfo{ID: l.id, Done: true, Time: l.r.now().UTC(), Key: l.info.Key})
	if err != nil {
		return err
	}
	return l.r.be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: l.id + ".done"}, backend.Bytes(b))
}

// checkCanDelete fails when the storage refuses deletes (a writer's
// credential, a read-only mount): master operations that remove objects
// find it out before they change anything. It saves a small object in
// locks/ and removes it.
func (r *Repo) checkCanDelete(ctx context.Context) error {
	var rnd [8]byte
	_, _ = randRead(rnd[:]) // crypto/rand.Read never fails (Go 1.24)
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
	if err := list(ctx, r.be, backend.TypeLock, func(name string, _ int64) error {
		if name == id || strings.HasPrefix(name, id+".") {
			names = append(names, name)
		}
		return nil
	}); err != nil {
		return err
	}
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
		if l.state(now) == lockActive {
			out = append(out, l.ActiveLock)
		}
	}
	return out, nil
}

// lockState is what the objects of one lock say.
type lockState struct {
	ActiveLock
	done    bool
	valid   bool // its own object is a lock that counts (signed, or a v1/v2 repository's legacy lock)
	signer  ed25519.PublicKey
	objects int
}

// States of a lock.
const (
	lockActive = iota
	lockStale  // too old, or its process is gone
	lockDone   // released
	lockJunk   // no valid lock object: ignored
)

// state says whether a lock is in force at now.
func (l *lockState) state(now time.Time) int {
	switch {
	case !l.valid:
		return lockJunk
	case l.done:
		return lockDone
	case now.Sub(l.Last) >= staleAfter || processGone(l.Info):
		return lockStale
	}
	return lockActive
}

// locks reads every lock object. A lock's own object must be signed by a
// key of the repository (its revocation aside) — or, in repositories of
// versions 1 and 2, be an old unsigned lock — and an exclusive lock must
// be the master's; refreshes and releases count only when signed by the
// same key. Everything else is ignored.
func (r *Repo) locks(ctx context.Context) ([]*lockState, error) {
	kr, err := r.keyring(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*lockState{}
	var order []string
	type extra struct {
		fi     backend.FileInfo
		suffix string
	}
	var extras []extra
	err = r.be.List(ctx, backend.TypeLock, func(fi backend.FileInfo) error {
		id, suffix, _ := strings.Cut(fi.Name, ".")
		if suffix == "probe" {
			return nil // checkCanDelete's, not a lock
		}
		s := byID[id]
		if s == nil {
			s = &lockState{ActiveLock: ActiveLock{ID: id}}
			byID[id] = s
			order = append(order, id)
		}
		s.objects++
		if suffix != "" {
			extras = append(extras, extra{fi, suffix})
			return nil
		}
		info, signer, ok := r.readLock(ctx, fi, kr)
		if !ok || r.revokedSigner(info.Key, kr) {
			return nil
		}
		if info.Exclusive && !signer.Equal(r.cfg.master.SignPub) && signer != nil {
			return nil // only the master takes exclusive locks
		}
		s.Info, s.signer, s.valid = info, signer, true
		s.Last = lockTime(fi, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listing locks: %w", r.be.Location(), err)
	}
	for _, e := range extras {
		id, _, _ := strings.Cut(e.fi.Name, ".")
		s := byID[id]
		if !s.valid {
			continue
		}
		info, signer, ok := r.readLock(ctx, e.fi, kr)
		if !ok || !bytes.Equal(signer, s.signer) || (info.ID != "" && info.ID != id) {
			continue
		}
		if e.suffix == "done" {
			s.done = true
		} else if t := lockTime(e.fi, info); t.After(s.Last) {
			s.Last = t
		}
	}
	out := make([]*lockState, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out, nil
}

// lockTime dates a sign of life by the storage when it can tell, not by
// the writer's clock: a writer running behind would look stale while
// alive, one running ahead would block prune long after it died.
func lockTime(fi backend.FileInfo, info LockInfo) time.Time {
	if !fi.ModTime.IsZero() {
		return fi.ModTime
	}
	return info.Time
}

// readLock reads one lock object and the key that signed it (nil for an
// old unsigned lock of a version 1 or 2 repository).
func (r *Repo) readLock(ctx context.Context, fi backend.FileInfo, kr *keyring) (LockInfo, ed25519.PublicKey, bool) {
	var info LockInfo
	if fi.Size > maxLockFile {
		return info, nil, false
	}
	b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeLock, Name: fi.Name}, maxLockFile)
	if err != nil {
		return info, nil, false
	}
	var sl signedLock
	if json.Unmarshal(b, &sl) != nil || sl.Body == nil {
		if r.cfg.Version >= 3 || json.Unmarshal(b, &info) != nil {
			return info, nil, false
		}
		return info, nil, true // an older larder's lock
	}
	if json.Unmarshal(sl.Body, &info) != nil {
		return info, nil, false
	}
	id, _, _ := strings.Cut(fi.Name, ".")
	if info.ID != id {
		return info, nil, false
	}
	pub := r.lockSigner(info.Key, kr)
	if pub == nil || crypto.Verify(pub, lockContext, sl.Body, sl.Sig) != nil {
		return info, nil, false
	}
	return info, pub, true
}

// lockSigner is the signing key of key ID k, if the repository knows it.
func (r *Repo) lockSigner(k string, kr *keyring) ed25519.PublicKey {
	id, err := crypto.ParseKeyID(k)
	if err != nil {
		return nil
	}
	if id == r.cfg.master.ID {
		return r.cfg.master.SignPub
	}
	if rec := kr.recs[id]; rec != nil {
		return rec.SignPub
	}
	return nil
}

// revokedSigner reports a lock of a revoked key: it holds off nobody.
func (r *Repo) revokedSigner(k string, kr *keyring) bool {
	id, err := crypto.ParseKeyID(k)
	return err == nil && kr.revoked[id] != nil
}

// CleanLocks removes the objects of finished, stale and junk locks
// (master); with all, every lock object (restic's unlock --remove-all).
func (r *Repo) CleanLocks(ctx context.Context) (int, error) { return r.cleanLocks(ctx, false) }

// Unlock removes stale locks (and with all, every lock); it returns how
// many it removed (master only).
func (r *Repo) Unlock(ctx context.Context, all bool) (int, error) { return r.cleanLocks(ctx, all) }

func (r *Repo) cleanLocks(ctx context.Context, all bool) (int, error) {
	if err := r.need("remove locks", crypto.RoleMaster); err != nil {
		return 0, err
	}
	locks, err := r.locks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := r.now()
	for _, l := range locks {
		if all || l.state(now) != lockActive {
			if err := r.removeLock(ctx, l.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	// Probe objects of checkCanDelete left by a credential that could not
	// remove them.
	var probes []string
	if err := list(ctx, r.be, backend.TypeLock, func(name string, _ int64) error {
		if strings.HasSuffix(name, ".probe") {
			probes = append(probes, name)
		}
		return nil
	}); err != nil {
		return n, err
	}
	for _, p := range probes {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeLock, Name: p}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return n, err
		}
	}
	return n, nil
}

// checkLockObjects reports lock objects that are not locks of this
// repository (unsigned, forged, unreadable).
func (r *Repo) checkLockObjects(ctx context.Context, kr *keyring, res *CheckResult) error {
	return r.be.List(ctx, backend.TypeLock, func(fi backend.FileInfo) error {
		res.Objects++
		res.Bytes += fi.Size
		if strings.HasSuffix(fi.Name, ".probe") {
			return nil
		}
		if _, _, ok := r.readLock(ctx, fi, kr); !ok {
			res.add("locks/"+fi.Name, "not a lock signed by a key of this repository (ignored; larder unlock removes it)")
		}
		return nil
	})
}

// processGone reports whether the process that took a lock is gone from
// this machine: same host name and boot, and no process with its ID and
// start time. Locks of other machines are judged by their age alone.
func processGone(info LockInfo) bool {
	host, _ := os.Hostname()
	if info.Host == "" || info.Host != host || info.PID <= 0 {
		return false
	}
	if info.Boot != "" && bootID() != "" && info.Boot != bootID() {
		return true // the machine rebooted since
	}
	if !processAlive(info.PID) {
		return true
	}
	// The process ID was reused by another process.
	return info.Start != 0 && processStart(info.PID) != 0 && processStart(info.PID) != info.Start
}

// bootID is Linux's boot ID ("" elsewhere).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// processStart is a process's start time in clock ticks after boot (Linux
// /proc/PID/stat, field 22; 0 when not known).
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state): field 22 is fields[19].
	if len(fields) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}
