package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"hash"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// Fuzz targets for every parser of stored bytes. Each checks a property,
// not only the absence of panics: what parses re-encodes to something that
// parses equal, counts never allocate past the input, parsers never read
// outside the ranges they asked for, and errors carry the documented
// sentinels.
//
// Most stored objects are sealed or signed, and a fuzzer cannot forge a
// tag: the targets seal or sign the fuzzed plaintext themselves with
// fuzzMaster, a master key drawn from a fixed seed, so that mutations reach
// the parsers behind the cryptography. The seed corpora under
// testdata/fuzz/<target> are real objects of a repository made with that
// key (TestFuzzSeeds -update rewrites them; crashers found by the fuzzer
// are kept next to them as regression seeds). TestFuzzSeedCorporaPresent
// fails when a target has no seeds, and TestFuzzSeedsValid when none of a
// target's seeds reaches the success path any more.

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora under testdata/fuzz")

// fuzzMaster is the master key of the fuzz targets and their seeds, made
// from a fixed seed.
var fuzzMaster = sync.OnceValue(func() *crypto.MasterKey {
	var s [32]byte
	copy(s[:], "larder repo fuzz master key v1")
	m, err := crypto.NewMasterKey(rand.NewChaCha8(s), uint64(validPol))
	if err != nil {
		panic(err)
	}
	return m
})

// fuzzRepo is a repository in memory opened with fuzzMaster, for the
// targets that go through a Repo.
func fuzzRepo(tb testing.TB, be backend.Backend) *Repo {
	m := fuzzMaster()
	rec, err := m.Record()
	if err != nil {
		tb.Fatal(err)
	}
	r := openedRepo(be, &Config{master: rec}, m)
	if t, ok := tb.(*testing.T); ok {
		r.SetCacheDir(t.TempDir())
	}
	return r
}

// heapAllocs returns the bytes allocated on the heap so far. It stops the
// world to flush every P's allocation cache: /gc/heap/allocs:bytes of
// runtime/metrics is cheaper but counts a span's allocations only when
// the span is swapped out, so a short window can be charged for earlier
// work.
func heapAllocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// FuzzPackFile: readPackTrailer on any bytes stored as a pack never panics
// and returns only blobs that lie between the header and the trailer.
func FuzzPackFile(f *testing.F) {
	m := fuzzMaster()
	f.Fuzz(func(t *testing.T, data []byte) {
		be := newMemBackend()
		id := ID{0xfa}
		be.Put(backend.Handle{Type: backend.TypeData, Name: id.String()}, data)
		hdr, blobs, err := pack.ReadTrailer(context.Background(), be, id, &m.IndexKey)
		if err != nil {
			if hdr != nil || blobs != nil {
				t.Fatal("results returned with an error")
			}
			return
		}
		if !bytes.Equal(hdr.Raw, data[:pack.HeaderSize]) {
			t.Fatal("header differs from the pack's first bytes")
		}
		n := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
		checkPackBlobs(t, blobs, len(data)-4-n)
	})
}

func checkPackBlobs(t *testing.T, blobs []pack.Blob, end int) {
	t.Helper()
	for _, b := range blobs {
		if !b.Type.Valid() {
			t.Fatalf("blob %s of type %d", b.ID.Short(), b.Type)
		}
		if int(b.Offset) < pack.HeaderSize || int(b.Offset)+int(b.Length) > end {
			t.Fatalf("blob %s at %d+%d outside the body %d..%d", b.ID.Short(), b.Offset, b.Length, pack.HeaderSize, end)
		}
	}
}

// FuzzPackTrailer: the trailer's plaintext (a byte whose low bit picks
// short (1) or long (0) entries, 2 bytes of body length, then the
// plaintext, sealed here): what parses lies inside the body, was not
// allocated past the input, and re-encodes to a trailer that parses equal.
func FuzzPackTrailer(f *testing.F) {
	key := &fuzzMaster().IndexKey
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		format := pack.EntriesLong
		if data[0]&1 == 1 {
			format = pack.EntriesShort
		}
		body := int(binary.LittleEndian.Uint16(data[1:]))
		plain := data[3:]
		be := newMemBackend()
		id := ID{0xfb}
		be.Put(backend.Handle{Type: backend.TypeData, Name: id.String()}, syntheticPackOf(format, key, body, plain))
		_, blobs, err := pack.ReadTrailer(context.Background(), be, id, key)
		if err != nil {
			return
		}
		checkPackBlobs(t, blobs, pack.HeaderSize+body)
		if len(blobs)*pack.MinEntry > len(plain) || cap(blobs)*pack.MinEntry > len(plain) {
			t.Fatalf("%d blobs (capacity %d) from %d bytes", len(blobs), cap(blobs), len(plain))
		}
		again := binary.AppendUvarint(nil, uint64(len(blobs)))
		for _, b := range blobs {
			again = pack.AppendEntry(again, b, format)
		}
		be.Put(backend.Handle{Type: backend.TypeData, Name: id.String()}, syntheticPackOf(format, key, body, again))
		_, blobs2, err := pack.ReadTrailer(context.Background(), be, id, key)
		if err != nil {
			t.Fatalf("re-encoded trailer: %v", err)
		}
		if !reflect.DeepEqual(blobs, blobs2) {
			t.Fatalf("re-encoded trailer differs:\n%v\n%v", blobs, blobs2)
		}
	})
}

// FuzzIndexFile: an index file's plaintext (sealed here). What opens
// re-seals to a file that opens equal, and holds no more entries than
// its bytes can encode; loadIndexFile accepts it under its content name
// only.
func FuzzIndexFile(f *testing.F) {
	m := fuzzMaster()
	key, pub := &m.IndexKey, m.SignPublic()
	sign := func(b []byte) ([]byte, error) { return m.Sign(index.Context, b) }
	f.Fuzz(func(t *testing.T, plain []byte) {
		sealed := crypto.Seal(nil, key, index.ObjType, nil, plain)
		idx, err := index.Open(sealed, key, pub)
		if err != nil {
			if idx != nil {
				t.Fatal("index returned with an error")
			}
			return
		}
		if len(idx.Packs)*33+len(idx.Supersedes)*32 > len(plain) {
			t.Fatalf("%d packs, %d superseded from %d bytes", len(idx.Packs), len(idx.Supersedes), len(plain))
		}
		blobs := 0
		for _, p := range idx.Packs {
			blobs += cap(p.Blobs)
		}
		if blobs*pack.MinEntry > len(plain) {
			t.Fatalf("room for %d blobs from %d bytes", blobs, len(plain))
		}
		resealed, err := idx.Seal(key, sign)
		if err != nil {
			t.Fatal(err)
		}
		idx2, err := index.Open(resealed, key, pub)
		if err != nil {
			t.Fatalf("re-sealed index: %v", err)
		}
		if !reflect.DeepEqual(idx, idx2) {
			t.Fatalf("re-sealed index differs:\n%+v\n%+v", idx, idx2)
		}
		be := newMemBackend()
		sum := sha256.Sum256(sealed)
		name := hex.EncodeToString(sum[:])
		be.Put(backend.Handle{Type: backend.TypeIndex, Name: name}, sealed)
		if idx3, err := loadIndexFile(context.Background(), be, name, key, pub); err != nil || !reflect.DeepEqual(idx, idx3) {
			t.Fatalf("loadIndexFile: %v", err)
		}
		sum[0] ^= 1
		wrong := hex.EncodeToString(sum[:])
		be.Put(backend.Handle{Type: backend.TypeIndex, Name: wrong}, sealed)
		if _, err := loadIndexFile(context.Background(), be, wrong, key, pub); err == nil {
			t.Fatal("an index file was accepted under another name")
		}
	})
}

// FuzzEnvelope: a stored snapshot. What parses is the signed bytes
// followed by a 64-byte signature, and marshals to an envelope that parses
// equal.
func FuzzEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		if len(e.Sig) != 64 || !bytes.Equal(e.signed, b[:len(b)-64]) || !bytes.Equal(e.Sig, b[len(b)-64:]) {
			t.Fatal("signature and signed bytes do not split the input")
		}
		if len(e.Body) > len(b) {
			t.Fatalf("a body of %d bytes from %d", len(e.Body), len(b))
		}
		again := append(e.marshalSigned(), e.Sig...)
		e2, err := parseEnvelope(again)
		if err != nil {
			t.Fatalf("re-marshalled envelope: %v", err)
		}
		if e2.Writer != e.Writer || e2.Seq != e.Seq || e2.Prev != e.Prev || !e2.Claimed.Equal(e.Claimed) ||
			e2.Original != e.Original || !bytes.Equal(e2.Body, e.Body) || !bytes.Equal(e2.Sig, e.Sig) {
			t.Fatalf("re-marshalled envelope differs:\n%+v\n%+v", e, e2)
		}
		if !bytes.Equal(e2.marshalSigned(), e2.signed) {
			t.Fatal("marshalSigned is not canonical")
		}
	})
}

// FuzzManifest: a manifest's JSON, sealed here to the master and the
// auditors as Commit does. Both open it alike; what opens re-marshals to
// the same JSON after a round trip; what does not open is ErrCorrupt.
func FuzzManifest(f *testing.F) {
	m := fuzzMaster()
	a, err := m.NewAuditKey("fuzz", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env := &Envelope{Writer: crypto.KeyID{1}, Seq: 7, Prev: ID{2}, Original: ID{3}}
		seal := func(b []byte) {
			var err error
			if env.Body, err = crypto.SealTo(nil, b, env.bodyAD(), m.BoxKey.Public, m.AuditBoxKey.Public); err != nil {
				t.Fatal(err)
			}
		}
		seal(body)
		r := fuzzRepo(t, nil)
		man, err := r.openManifest(env)
		ar := openedRepo(nil, r.cfg, a)
		aman, aerr := ar.openManifest(env)
		if (err == nil) != (aerr == nil) {
			t.Fatalf("master: %v, auditor: %v", err, aerr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		j1, err := json.Marshal(man)
		if err != nil {
			return // readable, but not something Commit writes (a time past year 9999)
		}
		if j, _ := json.Marshal(aman); !bytes.Equal(j, j1) {
			t.Fatal("the auditor read another manifest")
		}
		seal(j1)
		man2, err := r.openManifest(env)
		if err != nil {
			t.Fatalf("re-marshalled manifest: %v", err)
		}
		if j2, _ := json.Marshal(man2); !bytes.Equal(j1, j2) {
			t.Fatalf("manifest JSON round trip differs:\n%s\n%s", j1, j2)
		}
		// Bound to its place: another sequence number does not open it.
		env.Seq++
		if _, err := r.openManifest(env); err == nil {
			t.Fatal("a manifest opened with another envelope")
		}
	})
}

// treeInput decodes FuzzWalkTree's input: a depth byte, then list chunks
// as ID (32) | length (uint16 LE) | bytes. The root is the first chunk.
func treeInput(data []byte) (depth uint8, root ID, ids []ID, chunks [][]byte) {
	if len(data) < 1 {
		return 0, root, nil, nil
	}
	depth, data = data[0], data[1:]
	for len(data) >= 34 {
		var id ID
		copy(id[:], data)
		n := int(binary.LittleEndian.Uint16(data[32:]))
		data = data[34:]
		n = min(n, len(data))
		ids = append(ids, id)
		chunks = append(chunks, data[:n:n])
		data = data[n:]
	}
	if len(ids) > 0 {
		root = ids[0]
	}
	return depth, root, ids, chunks
}

// appendTreeInput encodes list chunks for FuzzWalkTree.
func appendTreeInput(b []byte, id ID, chunk []byte) []byte {
	b = append(b, id[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(chunk)))
	return append(b, chunk...)
}

var errTooManyLoads = errors.New("too many loads or entries")

// FuzzWalkTree: walkTree over list chunks from the input. A chunk is found
// by its ID, else by the ID's first byte (so the fuzzer can link chunks).
// The loader reuses one buffer and scribbles over it, as the blob reader
// reuses its; each chunk is handed out with no spare capacity, so a read
// past its end panics. The walk must give the entries a plain reference
// decoder gives, fail with ErrCorrupt on malformed chunks, and allocate no
// more than the bytes it loaded.
func FuzzWalkTree(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		depth, root, ids, chunks := treeInput(data)
		find := func(id ID) ([]byte, bool) {
			if len(chunks) == 0 {
				return nil, false
			}
			for i := range ids {
				if ids[i] == id {
					return chunks[i], true
				}
			}
			return chunks[int(id[0])%len(chunks)], true
		}
		const maxLoads = 2000
		loads, loaded := 0, 0
		var buf []byte
		load := func(id ID) ([]byte, error) {
			c, ok := find(id)
			if !ok {
				return nil, backend.ErrNotFound
			}
			if loads++; loads > maxLoads {
				return nil, errTooManyLoads
			}
			loaded += len(c)
			for i := range buf {
				buf[i] = 0xee
			}
			buf = append(buf[:0], c...)
			return buf[:len(c):len(c)], nil
		}
		// Entries are hashed as they come: the callback allocates nothing.
		const maxEntries = 1 << 16
		var got hash.Hash
		var n int
		var lenBuf [4]byte
		walk := func() (uint64, error) {
			got, n, loads, loaded = sha256.New(), 0, 0, 0
			before := heapAllocs()
			err := walkTree(context.Background(), depth, root, anyLength, load, func(e listEntry) error {
				if n++; n > maxEntries {
					return errTooManyLoads
				}
				got.Write(e.ID[:])
				binary.LittleEndian.PutUint32(lenBuf[:], e.Len)
				got.Write(lenBuf[:])
				return nil
			})
			return heapAllocs() - before, err
		}
		allocs, err := walk()
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, errTooManyLoads) {
			t.Fatalf("unexpected error %v", err)
		}
		// walkTree copies the entries of levels above 0 out of the
		// loader's buffer (32 of every 40 bytes): never more than it
		// loaded, plus error values. The count is process-wide: a
		// second walk confirms an excess before it fails the test.
		if limit := uint64(loaded) + 64<<10; allocs > limit {
			if allocs, _ = walk(); allocs > limit {
				t.Fatalf("walk of %d loaded bytes allocated %d", loaded, allocs)
			}
		}
		if err != nil {
			return
		}
		// The reference decoder: entries in order; every chunk and list
		// entry covers a byte or more, each list entry exactly what its
		// subtree holds.
		want, wn := sha256.New(), 0
		var ref func(d uint8, id ID) (uint64, bool)
		ref = func(d uint8, id ID) (uint64, bool) {
			if d == 0 {
				return 0, true
			}
			c, _ := find(id)
			size := 40
			if d == 1 {
				size = 36
			}
			if len(c) == 0 || len(c)%size != 0 {
				return 0, false
			}
			var total uint64
			for r := bytes.NewReader(c); r.Len() > 0; {
				var e listEntry
				r.Read(e.ID[:])
				if d == 1 {
					binary.Read(r, binary.LittleEndian, &e.Len)
					if e.Len == 0 {
						return 0, false
					}
					want.Write(e.ID[:])
					binary.Write(want, binary.LittleEndian, e.Len)
					wn++
					total += uint64(e.Len)
					continue
				}
				var covered uint64
				binary.Read(r, binary.LittleEndian, &covered)
				if covered == 0 || covered > anyLength-total {
					return 0, false
				}
				if n, ok := ref(d-1, e.ID); !ok || n != covered {
					return 0, false
				}
				total += covered
			}
			return total, true
		}
		if _, ok := ref(depth, root); !ok {
			t.Fatal("walkTree accepted what the reference decoder rejects")
		}
		if wn != n || !bytes.Equal(want.Sum(nil), got.Sum(nil)) {
			t.Fatalf("walkTree gave %d entries, the reference %d (or other ones)", n, wn)
		}
	})
}

// FuzzLockFile: any bytes as the body of a lock object, signed by the
// repository's master key, stored twice (one object's storage time is
// stale), and the same bytes stored unsigned. Listing locks never fails; a
// lock is active exactly when its body is a lock of its own name made by
// that key and it is fresh; the unsigned object never counts (version 3);
// an exclusive lock is refused exactly when one is active.
func FuzzLockFile(f *testing.F) {
	m := fuzzMaster()
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		be := newMemBackend()
		sig, err := m.Sign(lockContext, data)
		if err != nil {
			t.Fatal(err)
		}
		signed := mustJSON(t, signedLock{Body: data, Sig: sig})
		live, dead, bare := backend.Handle{Type: backend.TypeLock, Name: fuzzLockName}, backend.Handle{Type: backend.TypeLock, Name: "00000000000000bb"}, backend.Handle{Type: backend.TypeLock, Name: "00000000000000cc"}
		liveAt := now.Add(-time.Minute)
		be.PutAt(live, signed, liveAt)
		be.PutAt(dead, signed, now.Add(-staleAfter-time.Minute))
		be.PutAt(bare, data, liveAt)
		r := fuzzRepo(t, be)
		r.cfg.Version = repoVersion
		r.now = func() time.Time { return now }
		active, err := r.ActiveLocks(ctx)
		if err != nil {
			t.Fatalf("listing locks: %v", err)
		}
		var info LockInfo
		valid := len(signed) <= maxLockFile && json.Unmarshal(data, &info) == nil && info.ID == live.Name &&
			info.Key == m.ID.String() && !info.Done && !processGone(info)
		if !valid {
			if len(active) != 0 {
				t.Fatalf("a lock that is not one counts: %+v", active)
			}
		} else {
			if len(active) != 1 || active[0].ID != live.Name || !active[0].Last.Equal(liveAt) {
				t.Fatalf("active %+v, want %s only, dated by the storage", active, live.Name)
			}
			got := active[0].Info
			if got.Exclusive != info.Exclusive || got.Host != info.Host || got.PID != info.PID || got.Key != info.Key || !got.Time.Equal(info.Time) {
				t.Fatalf("lock info %+v, the object says %+v", got, info)
			}
		}
		l, err := r.Lock(ctx, true)
		switch {
		case valid && !errors.Is(err, ErrLocked):
			t.Fatalf("exclusive lock beside an active lock: %v", err)
		case !valid && err != nil:
			t.Fatalf("exclusive lock beside lock objects that are not locks: %v", err)
		case l != nil:
			if err := l.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// fuzzLockName is the lock FuzzLockFile's seeds name.
const fuzzLockName = "00000000000000aa"

var recordContexts = []struct {
	ctx crypto.SigContext
	new func() any
}{
	{forgetContext, func() any { return new(forgetRecord) }},
	{pruneContext, func() any { return new(pruneMark) }},
	{drillContext, func() any { return new(DrillRecord) }},
}

// FuzzSignedRecord: forget records, prune marks and drill records as
// stored. A record opens in at most one context, only when its signature
// verifies over the body it decodes, and the repository's readers of each
// kind agree with openRecord; failures are ErrCorrupt or ErrSignature.
func FuzzSignedRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		be := newMemBackend()
		sum := sha256.Sum256(data)
		name := hex.EncodeToString(sum[:])
		r := fuzzRepo(t, be)
		opened := 0
		for _, rc := range recordContexts {
			v := rc.new()
			err := r.openRecord(rc.ctx, data, v)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSignature) {
					t.Fatalf("error %v is neither ErrCorrupt nor ErrSignature", err)
				}
				continue
			}
			opened++
			var s signedRecord
			if json.Unmarshal(data, &s) != nil || crypto.Verify(r.cfg.master.SignPub, rc.ctx, s.Body, s.Sig) != nil {
				t.Fatal("a record opened without a valid signature")
			}
			w := rc.new()
			if json.Unmarshal(s.Body, w) != nil {
				t.Fatal("the signed body does not decode")
			}
			if j1, j2 := mustJSON(t, v), mustJSON(t, w); !bytes.Equal(j1, j2) {
				t.Fatalf("openRecord decoded %s, the signed body is %s", j1, j2)
			}
		}
		if opened > 1 {
			t.Fatal("a record opened in two signature contexts")
		}
		// Through the readers of stored records.
		for _, typ := range []backend.Type{backend.TypeForget, backend.TypePrune, backend.TypeDrill} {
			be.Put(backend.Handle{Type: typ, Name: name}, data)
		}
		// Each reader takes the record or skips it with a warning; none
		// fails.
		r.Warnings()
		_, ferr := r.forgotten(ctx)
		fskipped := len(r.Warnings()) > 0
		marks, merr := r.pruneMarks(ctx)
		r.Warnings()
		drills, problems, derr := r.Drills(ctx)
		if ferr != nil || merr != nil || derr != nil {
			t.Fatalf("a reader failed on one record: %v, %v, %v", ferr, merr, derr)
		}
		isForget := r.openRecord(forgetContext, data, new(forgetRecord)) == nil
		isMark := r.openRecord(pruneContext, data, new(pruneMark)) == nil
		isDrill := r.openRecord(drillContext, data, new(DrillRecord)) == nil
		if fskipped == isForget || (len(marks) == 1) != isMark || (len(drills) == 1) != isDrill || len(drills)+len(problems) != 1 {
			t.Fatalf("readers disagree with openRecord: forget skipped %v, marks %d, drills %d, problems %d", fskipped, len(marks), len(drills), len(problems))
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzRecordBody: the body of a signed record (first byte: which kind),
// signed here. What opens re-signs to a record that opens equal.
func FuzzRecordBody(f *testing.F) {
	m := fuzzMaster()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		rc := recordContexts[int(data[0])%len(recordContexts)]
		body := data[1:]
		sig, err := m.Sign(rc.ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := json.Marshal(signedRecord{Body: body, Sig: sig})
		r := fuzzRepo(t, nil)
		v := rc.new()
		if err := r.openRecord(rc.ctx, rec, v); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("a validly signed record failed with %v", err)
			}
			return
		}
		rec2, err := r.signRecord(rc.ctx, v)
		if err != nil {
			return // readable, but not something the master writes
		}
		v2 := rc.new()
		if err := r.openRecord(rc.ctx, rec2, v2); err != nil {
			t.Fatalf("re-signed record: %v", err)
		}
		if j1, j2 := mustJSON(t, v), mustJSON(t, v2); !bytes.Equal(j1, j2) {
			t.Fatalf("record round trip differs:\n%s\n%s", j1, j2)
		}
	})
}

// checkConfig checks what ReadConfig promises about a config it accepted.
func checkConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.Version < minRepoVersion || cfg.Version > repoVersion || cfg.PackSize < 1<<20 || cfg.PackSize > 1<<30 || cfg.master == nil || cfg.master.Role != crypto.RoleMaster {
		t.Fatalf("accepted config %+v", cfg)
	}
	for _, class := range []string{ClassText, ClassBulk} {
		s := cfg.Chunking[class]
		if err := (chunk.Params{Pol: validPol, Min: s.Min, Max: s.Max, AvgBits: s.AvgBits}).Validate(); err != nil {
			t.Fatalf("accepted chunking %s: %v", class, err)
		}
	}
}

// resignConfig stores cfg signed by fuzzMaster and reads it back.
func resignConfig(t *testing.T, cfg *Config) *Config {
	t.Helper()
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil // readable, but not something Init writes
	}
	sig, err := fuzzMaster().Sign(configContext, body)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := json.Marshal(signedConfig{Config: body, Sig: sig})
	be := newMemBackend()
	be.Put(backend.Handle{Type: backend.TypeConfig, Name: "config"}, signed)
	cfg2, err := ReadConfig(context.Background(), be)
	if err != nil {
		t.Fatalf("re-signed config: %v", err)
	}
	if j1, j2 := mustJSON(t, cfg), mustJSON(t, cfg2); !bytes.Equal(j1, j2) {
		t.Fatalf("config round trip differs:\n%s\n%s", j1, j2)
	}
	return cfg2
}

// FuzzConfig: a stored config, read with no key. What is accepted keeps
// ReadConfig's promises and, when fuzzMaster signed it, re-signs to a
// config read back equal.
func FuzzConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		be := newMemBackend()
		be.Put(backend.Handle{Type: backend.TypeConfig, Name: "config"}, data)
		cfg, err := ReadConfig(context.Background(), be)
		if err != nil {
			return
		}
		checkConfig(t, cfg)
		if cfg.master.SignPub.Equal(fuzzMaster().SignPublic()) {
			resignConfig(t, cfg)
		}
		if _, err := CheckKeyless(context.Background(), be); err != nil {
			t.Fatalf("keyless check of an accepted config: %v", err)
		}
	})
}

// FuzzConfigBody: the config's JSON, signed here by fuzzMaster.
func FuzzConfigBody(f *testing.F) {
	m := fuzzMaster()
	f.Fuzz(func(t *testing.T, body []byte) {
		sig, err := m.Sign(configContext, body)
		if err != nil {
			t.Fatal(err)
		}
		signed, _ := json.Marshal(signedConfig{Config: body, Sig: sig})
		be := newMemBackend()
		be.Put(backend.Handle{Type: backend.TypeConfig, Name: "config"}, signed)
		cfg, err := ReadConfig(context.Background(), be)
		if err != nil {
			return
		}
		checkConfig(t, cfg)
		if cfg.master.SignPub.Equal(m.SignPublic()) {
			resignConfig(t, cfg)
		}
	})
}

// fuzzSession is a session of fuzzMaster and its keys re-derived.
var fuzzSession = sync.OnceValues(func() (*crypto.Session, *crypto.SessionKeys) {
	m := fuzzMaster()
	s, err := crypto.NewSession(nil, m.BoxKey.Public, m.AuditBoxKey.Public)
	if err != nil {
		panic(err)
	}
	k, err := m.OpenSession(s.EphemeralPublic())
	if err != nil {
		panic(err)
	}
	return s, k
})

// FuzzBlob: a blob's plaintext before padding (flags, raw length uint32
// LE, then the encoding byte and the chunk), padded and sealed here.
// openBlob returns exactly the raw length the index gives, never more
// than a chunk, the stored bytes for raw blobs, and what it returns
// survives a seal and open; failures are ErrBlob.
func FuzzBlob(f *testing.F) {
	s, k := fuzzSession()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 5 {
			return
		}
		typ := pack.BlobData
		if data[0]&1 != 0 {
			typ = pack.BlobList
		}
		frame := data[0]&2 != 0 && typ == pack.BlobData
		limit := uint32(chunk.MaxChunk)
		if frame {
			limit = pack.MaxFrameRaw
		}
		rawLen := binary.LittleEndian.Uint32(data[1:])
		if rawLen <= limit {
			rawLen %= 1 << 20 // keep each run cheap
		}
		plain := data[5:]
		id := ID{0x42}
		padded := crypto.Pad(nil, plain)
		var sealed []byte
		var err error
		switch {
		case frame:
			sealed, err = s.SealData(nil, pack.ObjFrame, pack.FrameAD[:], padded)
		case typ == pack.BlobList:
			sealed, err = s.SealMeta(nil, pack.BlobObjType(typ), id[:], padded)
		default:
			sealed, err = s.SealData(nil, pack.BlobObjType(typ), id[:], padded)
		}
		if err != nil {
			t.Fatal(err)
		}
		open := func(sealed []byte, dst, scratch []byte) ([]byte, []byte, error) {
			if frame {
				return pack.OpenFrame(k, id, sealed, rawLen, limit, dst, scratch)
			}
			return pack.OpenBlob(k, typ, id, sealed, rawLen, limit, dst, scratch)
		}
		out, _, err := open(sealed, nil, nil)
		if err != nil {
			if !errors.Is(err, ErrBlob) {
				t.Fatalf("error %v is not ErrBlob", err)
			}
			return
		}
		if rawLen != 0 && uint32(len(out)) != rawLen || uint32(len(out)) > limit {
			t.Fatalf("%d bytes out, the index says %d", len(out), rawLen)
		}
		if plain[0] == pack.FlagRaw && !bytes.Equal(out, plain[1:]) {
			t.Fatal("a raw blob did not come back as stored")
		}
		var resealed []byte
		if frame {
			resealed, err = pack.SealFrame(s, out)
		} else {
			resealed, err = pack.SealBlob(s, typ, id, out)
		}
		if err != nil {
			t.Fatal(err)
		}
		out2, _, err := open(resealed, make([]byte, 0, 10), make([]byte, 3))
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("sealed again: %v", err)
		}
	})
}

// FuzzCacheLoc: a copy's key (40 bytes: ID, pack number, offset) and
// value as the cache stores them. What decodes encodes to the same copy.
func FuzzCacheLoc(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 40 {
			return
		}
		n, flags, b, ok := decodeLoc(data[:40], data[40:])
		if !ok {
			return
		}
		n2, flags2, b2, ok := decodeLoc(blobKey(b.ID, n, b.Offset), encodeLoc(flags, b))
		if !ok || n2 != n || b2 != b || flags2 != flags {
			t.Fatalf("cache location round trip: %d %+v, %d %+v", n, b, n2, b2)
		}
	})
}
