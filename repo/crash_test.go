//go:build linux

package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/crypto"
)

// Crash safety (DESIGN.md, "Repository": "Crash at any instant: the
// repository stays valid ... the next run continues").
//
// TestCrashSafety prepares a repository, then over and over starts a child
// process (this test binary again, running TestCrashHelperProcess) that
// opens it with the write key and ingests two snapshots of a few MB, and
// kills it with SIGKILL: after a random delay, when a watched folder of the
// repository shows a chosen step (a temporary file of a pack, index file,
// snapshot or lock appearing, or the object itself), or from inside the
// child at the Nth save of an object of some type, part way through its
// bytes or right after it. After each kill:
//
//   - CheckKeyless finds no problem, and counts exactly the objects on
//     disk (temporary files of interrupted saves are not objects);
//   - the dead writer's lock is reported by ActiveLocks, shared;
//   - the next ingest of the same data (same write key, same local cache
//     as the dead child) completes, and FindOriginal agrees with what the
//     dead child committed;
//   - Audit (audit key, which runs a keyed Check) and a master Check pass;
//   - the master restores every new snapshot exactly.
//
// At the end, exclusive locks are refused while the dead writers' locks
// are fresh and granted once they are stale; CleanLocks removes them; two
// prunes remove the packs the dead children left unindexed, and every
// snapshot still restores. The run must have produced temporary files,
// unindexed packs and snapshots committed by killed children, or it did
// not test what it claims.
//
// LARDER_LONG=1 runs 200 iterations instead of 30 (a fresh repository
// every 50, so that the checks stay cheap); LARDER_CRASH_SEED
// replays a run (the seed is logged).

const crashChildEnv = "LARDER_CRASH_CHILD"

// crashPlan is what the parent hands a child, as JSON in a file.
type crashPlan struct {
	Repo     string
	KeyFile  string
	CacheDir string
	Seeds    []uint64
	// The child kills itself at the KillNth save (1-based) of an object
	// of type KillType, once KillBytes of it were read (0: at its first
	// read; -1: after the save returned). KillNth 0: never.
	KillType  backend.Type
	KillNth   int
	KillBytes int64
}

// TestCrashHelperProcess is the child of TestCrashSafety; it does nothing
// in a normal run.
func TestCrashHelperProcess(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("the child process of TestCrashSafety")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var plan crashPlan
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(plan.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := crypto.ParseKeyFile(kb, nil)
	if err != nil || kf.Write == nil {
		t.Fatalf("write key file: %v", err)
	}
	ctx := context.Background()
	var be backend.Backend = backend.OpenLocal(plan.Repo)
	if plan.KillNth > 0 {
		be = &crashBackend{Local: be.(*backend.Local), plan: &plan}
	}
	r, err := Open(ctx, be, kf.Write)
	if err != nil {
		t.Fatal(err)
	}
	r.SetCacheDir(plan.CacheDir)
	defer r.Close()
	for _, seed := range plan.Seeds {
		if _, err := crashIngest(ctx, r, seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// crashBackend kills its process at a chosen save.
type crashBackend struct {
	*backend.Local
	plan *crashPlan
	mu   sync.Mutex
	n    int
}

func die() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func (c *crashBackend) Save(ctx context.Context, h backend.Handle, r backend.Source) error {
	if h.Type != c.plan.KillType {
		return c.Local.Save(ctx, h, r)
	}
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if n != c.plan.KillNth {
		return c.Local.Save(ctx, h, r)
	}
	if c.plan.KillBytes < 0 {
		c.Local.Save(ctx, h, r)
		die()
	}
	return c.Local.Save(ctx, h, &killReader{Source: r, left: c.plan.KillBytes})
}

// killReader kills the process once left bytes were read through it.
type killReader struct {
	backend.Source
	left int64
}

func (k *killReader) Read(p []byte) (int, error) {
	if k.left <= 0 {
		die()
	}
	if int64(len(p)) > k.left {
		p = p[:k.left]
	}
	n, err := k.Source.Read(p)
	k.left -= int64(n)
	return n, err
}

// fastRand returns n pseudo-random bytes of a seed, quickly.
func fastRand(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// crashData is what every seed's data shares: 512 KiB of random bytes and
// the lines of a SQL-like text.
var crashData = sync.OnceValues(func() ([]byte, []string) {
	shared := fastRand(1<<40, 512<<10)
	rng := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("the forum post reply user topic like edit quote admin badge draft vote poll link image")
	lines := make([]string, 6000)
	for i := range lines {
		var sb strings.Builder
		fmt.Fprintf(&sb, "INSERT INTO posts VALUES (%d, %d, '", i, rng.IntN(5000))
		for j := 0; j < 4+rng.IntN(10); j++ {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		sb.WriteString("');\n")
		lines[i] = sb.String()
	}
	return shared, lines
})

// crashStreams are the canonical streams of one seed's backup: a SQL-like
// text with a few seed-specific edits, 1 MiB of new random bytes, 512 KiB
// every seed shares, and a small (sometimes empty) stream.
func crashStreams(seed uint64) [][]byte {
	shared, lines := crashData()
	rng := rand.New(rand.NewPCG(seed, 99))
	edited := append([]string(nil), lines...)
	for j := 0; j < 3; j++ {
		i := rng.IntN(len(edited))
		edited[i] = fmt.Sprintf("UPDATE posts SET raw = 'edited by night %d' WHERE id = %d;\n", seed, i)
	}
	return [][]byte{
		[]byte(strings.Join(edited, "")),
		fastRand(seed+1<<41, 1<<20+int(seed%4096)),
		shared,
		fastRand(seed+1<<42, int(seed%3)*1000),
	}
}

func crashOriginal(streams [][]byte) [32]byte {
	h := sha256.New()
	for _, s := range streams {
		h.Write(s)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// crashIngest stores one seed's streams as the snapshot "crash-<seed>".
func crashIngest(ctx context.Context, r *Repo, seed uint64) (ID, error) {
	streams := crashStreams(seed)
	w, err := r.NewWriter(ctx)
	if err != nil {
		return ID{}, err
	}
	defer w.Close(context.WithoutCancel(ctx))
	m := &Manifest{Name: fmt.Sprintf("crash-%d", seed)}
	for i, s := range streams {
		class := ClassBulk
		if i == 0 {
			class = ClassText
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
	return w.Commit(ctx, m, crashOriginal(streams))
}

// crashMode is how one iteration kills its child.
type crashMode struct {
	name string
	// parent side
	delay     bool         // kill after a random delay
	watchType backend.Type // kill when an object of this type...
	watchTmp  bool         // ...starts being written (its temporary file appears), else is linked into place
	watchNth  int          // (the Nth such event)
	self      backend.Type // the child kills itself at a save of this type
	selfBytes string       // "mid", "start", "after"
	selfMax   int          // KillNth drawn in 1..selfMax
}

var crashModes = []crashMode{
	{name: "delay", delay: true},
	{name: "watch data tmp", watchType: backend.TypeData, watchTmp: true, watchNth: 2},
	{name: "self data mid", self: backend.TypeData, selfBytes: "mid", selfMax: 3},
	{name: "watch index tmp", watchType: backend.TypeIndex, watchTmp: true, watchNth: 1},
	{name: "self index mid", self: backend.TypeIndex, selfBytes: "mid", selfMax: 2},
	{name: "delay", delay: true},
	{name: "watch snapshot tmp", watchType: backend.TypeSnapshot, watchTmp: true, watchNth: 2},
	{name: "self snapshot mid", self: backend.TypeSnapshot, selfBytes: "mid", selfMax: 2},
	{name: "self data after", self: backend.TypeData, selfBytes: "after", selfMax: 4},
	{name: "watch index linked", watchType: backend.TypeIndex, watchNth: 1},
	{name: "self index after", self: backend.TypeIndex, selfBytes: "after", selfMax: 2},
	{name: "delay", delay: true},
	{name: "watch snapshot linked", watchType: backend.TypeSnapshot, watchNth: 1},
	{name: "self snapshot after", self: backend.TypeSnapshot, selfBytes: "after", selfMax: 1},
	{name: "self lock", self: backend.TypeLock, selfBytes: "start", selfMax: 4},
	{name: "watch lock linked", watchType: backend.TypeLock, watchNth: 1},
}

func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	iterations := 30
	switch {
	case os.Getenv("LARDER_LONG") != "":
		iterations = 200
	case testing.Short():
		iterations = len(crashModes)
	case raceEnabled:
		iterations = len(crashModes)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LARDER_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("LARDER_CRASH_SEED=%d, %d iterations", seed, iterations)
	rng := rand.New(rand.NewPCG(seed, seed))
	// A repository takes at most crashPerRepo iterations: the checks
	// after each kill read the whole repository, so one that grows for
	// hundreds of kills would make long runs quadratic.
	const crashPerRepo = 50
	for first := 0; first < iterations && !t.Failed(); first += crashPerRepo {
		crashRepo(t, rng, first, min(iterations, first+crashPerRepo))
	}
}

// crashRepo prepares a repository and runs iterations first..end-1 on it.
func crashRepo(t *testing.T, rng *rand.Rand, first, end int) {
	be, k := newRepo(t)
	setPackSize(t, be, k.master, 1<<20)
	work := t.TempDir()
	for _, typ := range []backend.Type{backend.TypeData, backend.TypeIndex, backend.TypeSnapshot, backend.TypeLock} {
		if err := os.MkdirAll(filepath.Join(be.Location(), string(typ)), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	kf, err := k.write.MarshalKeyFile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(work, "write.key")
	writeFile(t, keyFile, kf)
	cacheDir := filepath.Join(work, "cache") // shared by every ingest, dead or alive
	master := open(t, be, k.master)
	auditor := open(t, be, k.audit)

	cs := &crashState{t: t, be: be, k: k, master: master, auditor: auditor, cacheDir: cacheDir,
		verified: map[ID]bool{}, deadLocks: map[string]bool{}}

	// A child left alone must finish: the harness works, and its time
	// bounds the random delays.
	start := time.Now()
	if killed := cs.runChild(crashPlan{Repo: be.Location(), KeyFile: keyFile, CacheDir: cacheDir, Seeds: []uint64{1000, 1001}}, crashMode{name: "none"}, 0); killed {
		t.Fatal("the child was killed with no kill planned")
	}
	full := time.Since(start)
	cs.afterCrash([]uint64{1000, 1001}, false, -1, "none")

	for i := first; i < end && !t.Failed(); i++ {
		mode := crashModes[i%len(crashModes)]
		plan := crashPlan{Repo: be.Location(), KeyFile: keyFile, CacheDir: cacheDir, Seeds: []uint64{uint64(2 * i), uint64(2*i + 1)}}
		if mode.self != "" {
			plan.KillType, plan.KillNth = mode.self, 1+rng.IntN(mode.selfMax)
			switch mode.selfBytes {
			case "after":
				plan.KillBytes = -1
			case "start":
				plan.KillBytes = 0
			default:
				max := map[backend.Type]int{backend.TypeData: 600 << 10, backend.TypeIndex: 1500, backend.TypeSnapshot: 1200}[mode.self]
				plan.KillBytes = int64(rng.IntN(max))
			}
		}
		delay := time.Duration(rng.Int64N(int64(full + full/4)))
		killed := cs.runChild(plan, mode, delay)
		cs.afterCrash(plan.Seeds, killed, i, mode.name)
	}
	cs.finish()
}

// crashState carries what the iterations check and count.
type crashState struct {
	t                *testing.T
	be               *backend.Local
	k                keys
	master, auditor  *Repo
	cacheDir         string
	verified         map[ID]bool     // snapshots restored and compared
	deadLocks        map[string]bool // locks of killed children
	lastPID          int
	killed, finished int
	tmpFiles         int // temporary files in the repository
	tmpSeen          int // iterations that left temporary files
	cacheTmpSeen     int // killed children that left temporary folders in the cache
	unindexedSeen    int // iterations that left packs no index names
	deadCommits      int // snapshots committed by children that were then killed
}

// runChild runs one child under mode and reports whether it was killed.
func (cs *crashState) runChild(plan crashPlan, mode crashMode, delay time.Duration) bool {
	t := cs.t
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	b, _ := json.Marshal(plan)
	writeFile(t, planFile, b)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+planFile, "TMPDIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	// The watcher learns of the process through proc: it runs on its own
	// goroutine, and the kernel's ordering of events is invisible to the
	// race detector.
	var proc atomic.Pointer[os.Process]
	var stopWatch func()
	if mode.watchType != "" {
		var err error
		stopWatch, err = watchRepo(cs.be.Location(), mode.watchType, mode.watchTmp, mode.watchNth, func() {
			if p := proc.Load(); p != nil {
				p.Kill()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cs.lastPID = cmd.Process.Pid
	proc.Store(cmd.Process)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if mode.delay {
		timer = time.After(delay)
	}
	hang := time.After(2 * time.Minute)
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-timer:
			cmd.Process.Kill()
			timer = nil
		case <-hang:
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s: the child hung:\n%s", mode.name, out.String())
		}
	}
	if stopWatch != nil {
		stopWatch()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		cs.finished++
		return false
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			cs.killed++
			return true
		}
	}
	t.Fatalf("%s: the child failed: %v\n%s", mode.name, err, out.String())
	return false
}

// afterCrash checks the repository after a child ended and runs the next
// ingest of the same data.
func (cs *crashState) afterCrash(seeds []uint64, killed bool, iter int, mode string) {
	t := cs.t
	t.Helper()
	ctx := context.Background()
	defer func() {
		if t.Failed() {
			t.Fatalf("iteration %d (%s, killed %v) failed; replay with the seed above", iter, mode, killed)
		}
	}()

	// Temporary files are not objects; everything else hashes to its name.
	tmp, objects := 0, 0
	for _, typ := range append(slices.Clone(contentNamed), backend.TypeKey, backend.TypeLock) {
		filepath.WalkDir(filepath.Join(cs.be.Location(), string(typ)), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if strings.HasPrefix(d.Name(), ".tmp-") {
					tmp++
				} else {
					objects++
				}
			}
			return nil
		})
	}
	if tmp > cs.tmpFiles {
		cs.tmpSeen++
	}
	// A killed child's temporary packs are in the cache's tmp/, never in
	// /tmp; the next run removes them.
	if left, _ := os.ReadDir(cs.cacheTmp()); killed && len(left) > 0 {
		cs.cacheTmpSeen++
	}
	cs.tmpFiles = tmp
	res, err := CheckKeyless(ctx, cs.be)
	if err != nil {
		t.Fatalf("iteration %d: keyless check: %v", iter, err)
	}
	for _, p := range res.Problems {
		t.Errorf("iteration %d: keyless check: %s", iter, p)
	}
	if res.Objects != objects {
		t.Errorf("iteration %d: the keyless check counted %d objects, the folder holds %d (and %d temporary files)", iter, res.Objects, objects, tmp)
	}

	// Right after the crash, before anything repairs it: the keyed
	// checks pass and whatever the dead child committed restores.
	rep := mustAudit(t, cs.auditor)
	if rep.Check.Unindexed > 0 {
		cs.unindexedSeen++
	}
	mustCheck(t, cs.master, CheckOptions{})
	cs.restoreNew(iter, false)

	// The dead writer's lock is still stored, but its process is gone
	// from this machine: it is stale at once and blocks nothing.
	active, err := cs.master.ActiveLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range active {
		if l.Info.Exclusive {
			t.Errorf("iteration %d: an exclusive lock is active: %+v", iter, l)
		}
		if l.Info.PID == cs.lastPID {
			t.Errorf("iteration %d: the lock of a child that is gone is active: %+v", iter, l)
		}
	}
	all, err := cs.master.locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.valid && l.Info.PID == cs.lastPID && killed && !l.done {
			cs.deadLocks[l.ID] = true
		}
	}

	// What the dead child committed is found as already stored.
	before := map[string]int{}
	snaps, err := cs.master.Snapshots(ctx, true)
	if err != nil {
		t.Fatalf("iteration %d: %v", iter, err)
	}
	for _, s := range snaps {
		before[s.Manifest.Name]++
	}
	w, err := Open(ctx, cs.be, cs.k.write)
	if err != nil {
		t.Fatal(err)
	}
	w.SetCacheDir(cs.cacheDir)
	for _, seed := range seeds {
		name := fmt.Sprintf("crash-%d", seed)
		if before[name] > 0 && killed {
			cs.deadCommits++
		}
		_, found, err := w.FindOriginal(ctx, crashOriginal(crashStreams(seed)))
		if err != nil {
			t.Fatalf("iteration %d: FindOriginal: %v", iter, err)
		}
		if found != (before[name] > 0) {
			t.Errorf("iteration %d: FindOriginal(%s) = %v, but %d such snapshots exist", iter, name, found, before[name])
		}
	}
	// The next run: the same data again, the dead child's cache.
	if killed {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		for _, seed := range seeds {
			if _, err := crashIngest(tctx, w, seed); err != nil {
				t.Fatalf("iteration %d: the ingest after the crash: %v", iter, err)
			}
		}
		cancel()
	}
	if w.cache != nil {
		checkBolt(t, w.cache.db)
	}
	w.Close()

	// After the next run.
	if killed {
		mustCheck(t, cs.master, CheckOptions{})
		cs.restoreNew(iter, false)
	}
}

// restoreNew restores the snapshots not restored yet (all with again).
func (cs *crashState) restoreNew(iter int, again bool) {
	t := cs.t
	t.Helper()
	snaps, err := cs.master.Snapshots(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if cs.verified[s.ID] && !again {
			continue
		}
		seed, err := strconv.ParseUint(strings.TrimPrefix(s.Manifest.Name, "crash-"), 10, 64)
		if err != nil {
			t.Fatalf("snapshot %s: name %q", s.ID.Short(), s.Manifest.Name)
		}
		want := crashStreams(seed)
		if len(s.Manifest.Streams) != len(want) {
			t.Fatalf("iteration %d: snapshot %s has %d streams", iter, s.ID.Short(), len(s.Manifest.Streams))
		}
		for i, ref := range s.Manifest.Streams {
			if got := readStream(t, cs.master, ref); !bytes.Equal(got, want[i]) {
				t.Errorf("iteration %d: snapshot %s (%s) stream %d: %d bytes back, want %d", iter, s.ID.Short(), s.Manifest.Name, i, len(got), len(want[i]))
			}
		}
		cs.verified[s.ID] = true
	}
}

func (cs *crashState) finish() {
	t := cs.t
	if t.Failed() {
		return
	}
	ctx := context.Background()
	t.Logf("%d children killed, %d finished; %d iterations left temporary files, %d temporary folders in the cache, %d unindexed packs; %d snapshots committed by killed children; %d dead locks",
		cs.killed, cs.finished, cs.tmpSeen, cs.cacheTmpSeen, cs.unindexedSeen, cs.deadCommits, len(cs.deadLocks))
	if cs.cacheTmpSeen == 0 {
		t.Error("no killed child left a temporary folder in the cache: the test shows nothing about them")
	}
	if left, _ := os.ReadDir(cs.cacheTmp()); len(left) > 0 {
		t.Errorf("temporary folders of killed runs left after later runs: %d", len(left))
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "larder-packs-*")); len(left) > 0 {
		t.Errorf("temporary folders in %s: %v", os.TempDir(), left)
	}
	if cs.killed < len(crashModes)/2 || cs.tmpSeen == 0 || cs.unindexedSeen == 0 || cs.deadCommits == 0 || len(cs.deadLocks) == 0 {
		t.Errorf("the kills did not cover the crash points: %d killed, %d with temporary files, %d with unindexed packs, %d dead commits, %d dead locks",
			cs.killed, cs.tmpSeen, cs.unindexedSeen, cs.deadCommits, len(cs.deadLocks))
	}
	// Fresh locks of writers killed on this machine hold off nothing: an
	// exclusive lock is taken beside them at once.
	x, err := cs.master.Lock(ctx, true)
	if err != nil {
		t.Errorf("exclusive lock beside fresh locks of dead writers: %v", err)
	} else {
		x.Unlock(ctx)
	}
	if active, err := cs.master.ActiveLocks(ctx); err != nil || len(active) != 0 {
		t.Fatalf("active locks of dead processes: %v %v", active, err)
	}
	for i := 0; i < 2; i++ {
		res, err := cs.master.Prune(ctx, PruneOptions{})
		if err != nil {
			t.Fatalf("prune %d: %v", i+1, err)
		}
		t.Logf("prune %d: %+v", i+1, res)
	}
	if names := listNames(t, cs.be, backend.TypeLock); len(names) != 0 {
		t.Errorf("lock objects left after prune: %v", names)
	}
	res := mustCheck(t, cs.master, CheckOptions{})
	if res.Unindexed != 0 {
		t.Errorf("%d unindexed packs left after two prunes", res.Unindexed)
	}
	mustAudit(t, cs.auditor)
	if res, err := CheckKeyless(ctx, cs.be); err != nil || len(res.Problems) != 0 {
		t.Errorf("keyless check after prune: %v %v", err, res.Problems)
	}
	cs.restoreNew(-1, true)
}

// cacheTmp is the cache's folder of temporary packs.
func (cs *crashState) cacheTmp() string {
	return filepath.Join(cs.cacheDir, cs.master.cfg.ID, "tmp")
}

// watchRepo calls kill at the nth time an object of type typ (its
// temporary file, with tmp) appears in the repository at root, using
// inotify. stop ends the watch.
func watchRepo(root string, typ backend.Type, tmp bool, nth int, kill func()) (stop func(), err error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: Close ends a Read
	const mask = syscall.IN_CREATE | syscall.IN_MOVED_TO
	dirs := map[int32]string{}
	var mu sync.Mutex
	add := func(dir string) error {
		wd, err := syscall.InotifyAddWatch(fd, dir, mask)
		if err != nil {
			return err
		}
		mu.Lock()
		dirs[int32(wd)] = dir
		mu.Unlock()
		return nil
	}
	top := filepath.Join(root, string(typ))
	if err := add(top); err != nil {
		f.Close()
		return nil, err
	}
	seen := 0
	match := func(name string) bool {
		if strings.HasPrefix(name, ".tmp-") != tmp {
			return false
		}
		seen++
		return seen == nth
	}
	scan := func(dir string) {
		// Pack folders data/xx appear during the ingest: watch them and
		// look at what they held before the watch began.
		add(dir)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if match(e.Name()) {
				kill()
			}
		}
	}
	if typ == backend.TypeData {
		entries, _ := os.ReadDir(top)
		for _, e := range entries {
			if e.IsDir() {
				add(filepath.Join(top, e.Name()))
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				wd := int32(binary.NativeEndian.Uint32(buf[off:]))
				evMask := binary.NativeEndian.Uint32(buf[off+4:])
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+l], "\x00"))
				off += syscall.SizeofInotifyEvent + l
				mu.Lock()
				dir := dirs[wd]
				mu.Unlock()
				switch {
				case evMask&syscall.IN_ISDIR != 0:
					if typ == backend.TypeData && dir == top {
						scan(filepath.Join(dir, name))
					}
				case match(name):
					kill()
				}
			}
		}
	}()
	return func() {
		f.Close()
		wg.Wait()
	}, nil
}
