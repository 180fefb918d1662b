package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/crypto"
)

// The seed corpora of the fuzz targets: real objects of a repository made
// with fuzzMaster, written by TestFuzzSeeds with -update:
//
//	go test ./repo -run '^TestFuzzSeeds$' -update
//
// Files named seed-* are rewritten; any other file in a corpus folder (a
// crasher the fuzzer found, kept as a regression seed) stays.

// corpusFile encodes one []byte input in the go test fuzz v1 format.
func corpusFile(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

// parseCorpusFile decodes a one-[]byte-input corpus file.
func parseCorpusFile(b []byte) ([]byte, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a one-input go test fuzz v1 file")
	}
	arg := lines[1]
	if !strings.HasPrefix(arg, "[]byte(") || !strings.HasSuffix(arg, ")") {
		return nil, fmt.Errorf("input %.20q is not a []byte", arg)
	}
	s, err := strconv.Unquote(arg[len("[]byte(") : len(arg)-1])
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// fuzzTargets lists the Fuzz functions of this package's test files.
func fuzzTargets(t *testing.T) []string {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found: %v", err)
	}
	var targets []string
	fset := token.NewFileSet()
	for _, file := range files {
		af, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Fuzz") {
				targets = append(targets, fd.Name.Name)
			}
		}
	}
	sort.Strings(targets)
	return targets
}

// committedSeeds reads a target's corpus folder.
func committedSeeds(t *testing.T, target string) map[string][]byte {
	dir := filepath.Join("testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("%s: %v", target, err)
		return nil
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		in, err := parseCorpusFile(b)
		if err != nil {
			t.Errorf("%s/%s: %v", target, e.Name(), err)
			continue
		}
		out[e.Name()] = in
	}
	return out
}

// TestFuzzSeedCorporaPresent finds every Fuzz function of the package and
// fails unless testdata/fuzz/<name> holds at least one seed: a renamed
// target or a moved folder must not lose its corpus without a word.
func TestFuzzSeedCorporaPresent(t *testing.T) {
	targets := fuzzTargets(t)
	if len(targets) < 10 {
		t.Fatalf("found only fuzz targets %v", targets)
	}
	for _, target := range targets {
		if seeds := committedSeeds(t, target); len(seeds) == 0 {
			t.Errorf("%s: no seeds in testdata/fuzz/%s (run TestFuzzSeeds with -update)", target, target)
		}
	}
}

// seedSucceeds reports, per target, whether an input gets past the
// target's parser: seeds that all fail would only fuzz the error paths.
var seedSucceeds = map[string]func(t *testing.T, in []byte) bool{
	"FuzzPackFile": func(t *testing.T, in []byte) bool {
		be := newMemBackend()
		be.Put(backend.Handle{Type: backend.TypeData, Name: ID{1}.String()}, in)
		_, blobs, err := pack.ReadTrailer(context.Background(), be, ID{1}, &fuzzMaster().IndexKey)
		return err == nil && len(blobs) > 0
	},
	"FuzzPackTrailer": func(t *testing.T, in []byte) bool {
		if len(in) < 3 {
			return false
		}
		key := &fuzzMaster().IndexKey
		be := newMemBackend()
		format := pack.EntriesLong
		if in[0]&1 == 1 {
			format = pack.EntriesShort
		}
		be.Put(backend.Handle{Type: backend.TypeData, Name: ID{1}.String()}, syntheticPackOf(format, key, int(binary.LittleEndian.Uint16(in[1:])), in[3:]))
		_, blobs, err := pack.ReadTrailer(context.Background(), be, ID{1}, key)
		return err == nil && len(blobs) > 0
	},
	"FuzzIndexFile": func(t *testing.T, in []byte) bool {
		m := fuzzMaster()
		f, err := index.Open(crypto.Seal(nil, &m.IndexKey, index.ObjType, nil, in), &m.IndexKey, m.SignPublic())
		return err == nil && len(f.Packs) > 0
	},
	"FuzzEnvelope": func(t *testing.T, in []byte) bool {
		_, err := parseEnvelope(in)
		return err == nil
	},
	"FuzzManifest": func(t *testing.T, in []byte) bool {
		var m Manifest
		return json.Unmarshal(in, &m) == nil && len(m.Streams) > 0
	},
	"FuzzWalkTree": func(t *testing.T, in []byte) bool {
		depth, root, ids, chunks := treeInput(in)
		n := 0
		err := walkTree(context.Background(), depth, root, anyLength, func(id ID) ([]byte, error) {
			for i := range ids {
				if ids[i] == id {
					return chunks[i], nil
				}
			}
			return nil, backend.ErrNotFound
		}, func(listEntry) error { n++; return nil })
		return err == nil && n > 0
	},
	"FuzzLockFile": func(t *testing.T, in []byte) bool {
		var info LockInfo
		return json.Unmarshal(in, &info) == nil && info.ID == fuzzLockName && info.Key == fuzzMaster().ID.String()
	},
	"FuzzSignedRecord": func(t *testing.T, in []byte) bool {
		r := fuzzRepo(t, nil)
		for _, rc := range recordContexts {
			if r.openRecord(rc.ctx, in, rc.new()) == nil {
				return true
			}
		}
		return false
	},
	"FuzzRecordBody": func(t *testing.T, in []byte) bool {
		if len(in) < 1 {
			return false
		}
		return json.Unmarshal(in[1:], recordContexts[int(in[0])%len(recordContexts)].new()) == nil
	},
	"FuzzConfig": func(t *testing.T, in []byte) bool {
		be := newMemBackend()
		be.Put(backend.Handle{Type: backend.TypeConfig, Name: "config"}, in)
		_, err := ReadConfig(context.Background(), be)
		return err == nil
	},
	"FuzzConfigBody": func(t *testing.T, in []byte) bool {
		sig, _ := fuzzMaster().Sign(configContext, in)
		signed, _ := json.Marshal(signedConfig{Config: in, Sig: sig})
		be := newMemBackend()
		be.Put(backend.Handle{Type: backend.TypeConfig, Name: "config"}, signed)
		_, err := ReadConfig(context.Background(), be)
		return err == nil
	},
	"FuzzBlob": func(t *testing.T, in []byte) bool {
		if len(in) < 6 {
			return false
		}
		s, k := fuzzSession()
		typ := pack.BlobData
		if in[0]&1 != 0 {
			typ = pack.BlobList
		}
		padded := crypto.Pad(nil, in[5:])
		var sealed []byte
		id := ID{0x42}
		if typ == pack.BlobList {
			sealed, _ = s.SealMeta(nil, pack.BlobObjType(typ), id[:], padded)
		} else {
			sealed, _ = s.SealData(nil, pack.BlobObjType(typ), id[:], padded)
		}
		_, _, err := pack.OpenBlob(k, typ, id, sealed, binary.LittleEndian.Uint32(in[1:]), chunk.MaxChunk, nil, nil)
		return err == nil
	},
	"FuzzCacheLoc": func(t *testing.T, in []byte) bool {
		if len(in) < 40 {
			return false
		}
		_, _, _, ok := decodeLoc(in[:40], in[40:])
		return ok
	},
}

// TestFuzzSeedsValid: every target has a seed that gets past its parser
// (for example, seeds signed by a fuzzMaster that changed would not).
func TestFuzzSeedsValid(t *testing.T) {
	for _, target := range fuzzTargets(t) {
		ok := seedSucceeds[target]
		if ok == nil {
			t.Errorf("%s: no success predicate in seedSucceeds", target)
			continue
		}
		n := 0
		for _, in := range committedSeeds(t, target) {
			if ok(t, in) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no seed gets past the parser (regenerate with TestFuzzSeeds -update)", target)
		}
	}
}

// TestFuzzSeeds rewrites the seed corpora with -update; without it, it
// only checks that a fresh repository still yields a seed per target.
func TestFuzzSeeds(t *testing.T) {
	corpora := fuzzSeedCorpora(t)
	for _, target := range fuzzTargets(t) {
		if len(corpora[target]) == 0 {
			t.Errorf("%s: the seed repository gave no seed", target)
		}
	}
	if !*update {
		return
	}
	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
		for _, p := range old {
			os.Remove(p)
		}
		for _, s := range seeds {
			sum := sha256.Sum256(s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8])), corpusFile(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fuzzSeedCorpora makes a small repository with fuzzMaster and takes its
// objects apart into seeds for each target.
func fuzzSeedCorpora(t *testing.T) map[string][][]byte {
	crypto.TestOnlyFastKDF()
	ctx := context.Background()
	m := fuzzMaster()
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	ir, err := Init(ctx, be, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := m.NewWriteKey("forum", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ak, err := m.NewAuditKey("auditor", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*crypto.KeyRecord{wk.Record(), ak.Record()} {
		if err := ir.AddKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	ir.Close()
	seeds := map[string][][]byte{}
	add := func(target string, b []byte) { seeds[target] = append(seeds[target], bytes.Clone(b)) }
	read := func(h backend.Handle) []byte {
		b, err := loadAll(ctx, be, h, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	w := open(t, be, wk)
	// A lock and its release, as a write key leaves them.
	lock, err := w.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	// Lock bodies (FuzzLockFile signs them with the master key): the
	// writer's lock as the master's, shared and exclusive, and a refresh.
	var sl signedLock
	if err := json.Unmarshal(read(backend.Handle{Type: backend.TypeLock, Name: lock.id}), &sl); err != nil {
		t.Fatal(err)
	}
	var info LockInfo
	if err := json.Unmarshal(sl.Body, &info); err != nil {
		t.Fatal(err)
	}
	info.ID, info.Host, info.Key = fuzzLockName, "another host", m.ID.String()
	body, _ := json.Marshal(info)
	add("FuzzLockFile", body)
	info.Exclusive = !info.Exclusive
	body, _ = json.Marshal(info)
	add("FuzzLockFile", body)
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	refresh, _ := json.Marshal(LockInfo{ID: fuzzLockName, Seq: 1, Time: time.Now().UTC(), Key: m.ID.String()})
	add("FuzzLockFile", refresh)

	text := []byte(strings.Repeat("INSERT INTO posts VALUES (1, 'hello forum');\n", 600))
	ingest(t, w, "night1", text, randBytes(1, 20_000))
	ingest(t, w, "night2", append(bytes.Clone(text), "UPDATE posts SET raw = 'edited';\n"...), randBytes(2, 3000), nil)
	ingest(t, w, "night3", text[:100])
	mr := open(t, be, m)
	if _, err := mr.Forget(ctx, Policy{Last: 2}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Prune(ctx, PruneOptions{Grace: time.Hour}); err != nil {
		t.Fatal(err)
	}
	snaps, err := mr.Snapshots(ctx, true)
	if err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots: %v", err)
	}
	if _, err := mr.RecordDrill(ctx, &DrillRecord{Snapshot: snaps[0].ID, Time: time.Now().UTC(), Host: "drill", OK: true,
		Bytes: 123, SHA256OK: true, Postgres: &PGDrill{Version: "17", Tables: 3, Rows: 42}}); err != nil {
		t.Fatal(err)
	}

	// Config.
	cfgBytes := read(backend.Handle{Type: backend.TypeConfig, Name: "config"})
	add("FuzzConfig", cfgBytes)
	var sc signedConfig
	if err := json.Unmarshal(cfgBytes, &sc); err != nil {
		t.Fatal(err)
	}
	add("FuzzConfigBody", sc.Config)

	// Packs, their trailers and blobs.
	br, err := mr.newBlobReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer br.close()
	for _, name := range listNames(t, be, backend.TypeData) {
		pk := read(backend.Handle{Type: backend.TypeData, Name: name})
		add("FuzzPackFile", pk)
		n := int(binary.LittleEndian.Uint32(pk[len(pk)-4:]))
		body := len(pk) - 4 - n - pack.HeaderSize
		plain, err := crypto.Open(nil, &m.IndexKey, pack.ObjTrailer, pk[:pack.HeaderSize], pk[len(pk)-4-n:len(pk)-4])
		if err != nil {
			t.Fatal(err)
		}
		if body <= 0xffff {
			add("FuzzPackTrailer", append(binary.LittleEndian.AppendUint16([]byte{1}, uint16(body)), plain...))
		}
		id, _ := ParseID(name)
		_, blobs, err := pack.ReadTrailer(ctx, be, id, &m.IndexKey)
		if err != nil {
			t.Fatal(err)
		}
		k, err := br.sessionKeys(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range blobs {
			if i >= 3 {
				break
			}
			sealed := pk[b.Offset : b.Offset+b.Length]
			var padded []byte
			switch {
			case b.Framed:
				padded, err = k.OpenData(nil, pack.ObjFrame, pack.FrameAD[:], sealed)
			case b.Type == pack.BlobList:
				padded, err = k.OpenMeta(nil, pack.BlobObjType(b.Type), b.ID[:], sealed)
			default:
				padded, err = k.OpenData(nil, pack.BlobObjType(b.Type), b.ID[:], sealed)
			}
			if err != nil {
				t.Fatal(err)
			}
			plain, err := crypto.Unpad(padded)
			if err != nil {
				t.Fatal(err)
			}
			in := []byte{byte(b.Type - 1)}
			rawLen := b.RawLen
			if b.Framed {
				in[0] |= 2
				rawLen = b.FrameRaw
			}
			in = binary.LittleEndian.AppendUint32(in, rawLen)
			add("FuzzBlob", append(in, plain...))
			add("FuzzCacheLoc", append(blobKey(b.ID, uint32(1+i*300), b.Offset), encodeLoc(byte(i%4), b)...))
		}
	}

	// Index files.
	for _, name := range listNames(t, be, backend.TypeIndex) {
		plain, err := crypto.Open(nil, &m.IndexKey, index.ObjType, nil, read(backend.Handle{Type: backend.TypeIndex, Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzIndexFile", plain)
	}

	// Snapshots, manifests and chunk list trees.
	for _, s := range snaps {
		raw := read(backend.Handle{Type: backend.TypeSnapshot, Name: s.ID.String()})
		add("FuzzEnvelope", raw)
		env, err := parseEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.OpenSealed(env.Body, env.bodyAD())
		if err != nil {
			t.Fatal(err)
		}
		if env.Cert != nil {
			if body, err = crypto.Unpad(body); err != nil {
				t.Fatal(err)
			}
		}
		add("FuzzManifest", body)
		for _, ref := range s.Manifest.Streams {
			if ref.Depth == 0 {
				continue
			}
			in := []byte{ref.Depth}
			var ids []ID
			var chunks [][]byte
			err := walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
				b, err := br.load(ctx, pack.BlobList, id, nil)
				ids, chunks = append(ids, id), append(chunks, bytes.Clone(b))
				return b, err
			}, func(listEntry) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			for i := range ids {
				in = appendTreeInput(in, ids[i], chunks[i])
			}
			add("FuzzWalkTree", in)
		}
	}
	// A deeper tree than small streams make: 1100 entries need two levels.
	lists := map[ID][]byte{}
	var order []ID
	tb := newTreeBuilder(func(_ context.Context, data []byte) (ID, error) {
		id := ID(sha256.Sum256(data))
		if _, ok := lists[id]; !ok {
			order = append(order, id)
		}
		lists[id] = bytes.Clone(data)
		return id, nil
	})
	for i := 0; i < 1100; i++ {
		if err := tb.Add(ctx, ID(sha256.Sum256([]byte{byte(i), byte(i >> 8)})), uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	depth, root, err := tb.Finish(ctx)
	if err != nil || depth < 2 {
		t.Fatalf("tree of depth %d: %v", depth, err)
	}
	in := appendTreeInput([]byte{depth}, root, lists[root])
	for _, id := range order {
		if id != root {
			in = appendTreeInput(in, id, lists[id])
		}
	}
	add("FuzzWalkTree", in)

	// Signed records.
	for _, typ := range []backend.Type{backend.TypeForget, backend.TypePrune, backend.TypeDrill} {
		names := listNames(t, be, typ)
		if len(names) == 0 {
			t.Fatalf("no %s records", typ)
		}
		for _, name := range names {
			b := read(backend.Handle{Type: typ, Name: name})
			add("FuzzSignedRecord", b)
			var s signedRecord
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			kind := map[backend.Type]byte{backend.TypeForget: 0, backend.TypePrune: 1, backend.TypeDrill: 2}[typ]
			add("FuzzRecordBody", append([]byte{kind}, s.Body...))
		}
	}
	return seeds
}
