package repo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// Compatibility (STYLE rule 14: on-disk identifiers last forever). The
// repository in testdata/compat/vN-repo.tar.gz was made by the code of
// repository format vN; every later version must open it with each of its
// keys, restore every snapshot to the recorded bytes, and pass check and
// audit. See testdata/compat/README.md. A fixture is never regenerated
// once released: a new format adds a fixture beside the old ones.
//
// LARDER_UPDATE_COMPAT=N regenerates the vN fixture (only while vN is
// still being defined).

const (
	compatDir        = "testdata/compat"
	compatMasterPass = "larder compat master"
	compatAuditPass  = "larder compat audit"
)

// compatVersions are the repository formats with a fixture.
var compatVersions = []int{1, 2, 3}

// compatV3 checks what version 3 adds: short entries, a verified index
// (the fixture was pruned), snapshots that carry their certificate.
func compatV3(t *testing.T, be backend.Backend, mk *crypto.MasterKey) {
	t.Helper()
	ctx := context.Background()
	verified := 0
	for _, name := range listNames(t, be, backend.TypeIndex) {
		f, err := loadIndexFile(ctx, be, name, &mk.IndexKey, mk.SignPublic())
		if err != nil {
			t.Fatal(err)
		}
		if f.Entries != pack.EntriesShort {
			t.Errorf("index/%s: long entries in a version 3 repository", name)
		}
		if f.Verified {
			verified++
		}
	}
	if verified == 0 {
		t.Error("no verified index file in the pruned v3 fixture")
	}
	for _, name := range listNames(t, be, backend.TypeSnapshot) {
		env, err := loadEnvelope(ctx, be, name)
		if err != nil || env.Cert == nil {
			t.Errorf("snapshots/%s: %v, certificate %v", name, err, env != nil && env.Cert != nil)
		}
	}
}

// compatFile names a file of the vN fixture.
func compatFile(version int, name string) string { return fmt.Sprintf("v%d-%s", version, name) }

// compatExpected is what the fixture's snapshots hold.
type compatExpected struct {
	Snapshots map[string]compatSnapshot `json:"snapshots"` // by ID
	Forgotten []string                  `json:"forgotten"` // snapshot IDs removed by forget
	Revoked   string                    `json:"revoked"`   // key ID of the revoked write key
	Drills    int                       `json:"drills"`
	Marks     int                       `json:"prune_marks"`
}

type compatSnapshot struct {
	Name     string         `json:"name"`
	Writer   string         `json:"writer"` // key name
	Original string         `json:"original_sha256"`
	Streams  []compatStream `json:"streams"`
}

type compatStream struct {
	Len    uint64 `json:"len"`
	SHA256 string `json:"sha256"`
}

func TestCompat(t *testing.T) {
	for _, v := range compatVersions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testCompat(t, v) })
	}
}

func testCompat(t *testing.T, version int) {
	if os.Getenv("LARDER_UPDATE_COMPAT") == fmt.Sprint(version) {
		makeCompatFixture(t, version)
	}
	for _, name := range []string{"repo.tar.gz", "expected.json", "master.key", "write.key", "audit.key", "revoked-write.key"} {
		f := compatFile(version, name)
		if _, err := os.Stat(filepath.Join(compatDir, f)); err != nil {
			t.Fatalf("compatibility fixture missing: %v (it must be committed; see %s/README.md)", err, compatDir)
		}
	}
	var exp compatExpected
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(compatDir, compatFile(version, "expected.json"))), &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Snapshots) < 3 || len(exp.Forgotten) == 0 || exp.Drills == 0 || exp.Marks == 0 || exp.Revoked == "" {
		t.Fatalf("the fixture's expectations are too thin: %+v", exp)
	}
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	untarGz(t, filepath.Join(compatDir, compatFile(version, "repo.tar.gz")), root)
	be := backend.OpenLocal(root)
	if cfg, err := ReadConfig(ctx, be); err != nil || cfg.Version != version {
		t.Fatalf("the v%d fixture's config: %v, %+v", version, err, cfg)
	}

	mk := parseKeyFile(t, compatFile(version, "master.key"), compatMasterPass).Master
	wk := parseKeyFile(t, compatFile(version, "write.key"), "").Write
	ak := parseKeyFile(t, compatFile(version, "audit.key"), compatAuditPass).Audit
	if mk == nil || wk == nil || ak == nil {
		t.Fatal("a key file holds another role")
	}
	// The master key file stored in the repository opens too.
	stored, err := MasterKeyFile(ctx, be)
	if err != nil {
		t.Fatal(err)
	}
	if kf, err := crypto.ParseKeyFile(stored, []byte(compatMasterPass)); err != nil || kf.Master == nil || kf.Master.ID != mk.ID {
		t.Fatalf("the repository's master key file: %v", err)
	}

	// No key.
	if res, err := CheckKeyless(ctx, be); err != nil || len(res.Problems) != 0 || res.Objects == 0 {
		t.Fatalf("keyless check: %v %+v", err, res)
	}

	// Master: everything restores, check reads every blob, audit passes.
	m := open(t, be, mk)
	// Version 1 stores a blob per chunk, version 2 frames.
	if _, framed, _ := frames(t, m); (framed > 0) != (version >= 2) {
		t.Fatalf("the v%d fixture holds %d framed chunks", version, framed)
	}
	if version >= 3 {
		compatV3(t, be, mk)
	}
	snaps, err := m.Snapshots(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != len(exp.Snapshots) {
		t.Errorf("%d snapshots, the fixture recorded %d", len(snaps), len(exp.Snapshots))
	}
	for _, s := range snaps {
		want, ok := exp.Snapshots[s.ID.String()]
		if !ok {
			t.Errorf("snapshot %s is not in the fixture's record", s.ID.Short())
			continue
		}
		if s.Manifest.Name != want.Name || len(s.Manifest.Streams) != len(want.Streams) {
			t.Errorf("snapshot %s: %q with %d streams, want %q with %d", s.ID.Short(), s.Manifest.Name, len(s.Manifest.Streams), want.Name, len(want.Streams))
			continue
		}
		for i, ref := range s.Manifest.Streams {
			got := readStream(t, m, ref)
			sum := sha256.Sum256(got)
			if uint64(len(got)) != want.Streams[i].Len || hex.EncodeToString(sum[:]) != want.Streams[i].SHA256 {
				t.Errorf("snapshot %s (%s) stream %d: %d bytes %x, want %d bytes %s", s.ID.Short(), want.Name, i, len(got), sum[:8], want.Streams[i].Len, want.Streams[i].SHA256[:16])
			}
		}
		orig, _ := hex.DecodeString(want.Original)
		if name, found, err := m.FindOriginal(ctx, [32]byte(orig)); err != nil || !found || name != s.ID.String() {
			t.Errorf("snapshot %s: FindOriginal = %s %v %v", s.ID.Short(), name, found, err)
		}
	}
	res := mustCheck(t, m, CheckOptions{ReadData: 1})
	if res.ReadBlobs == 0 || res.Snapshots != len(exp.Snapshots) {
		t.Errorf("check read %d blobs of %d snapshots", res.ReadBlobs, res.Snapshots)
	}
	rep := mustAudit(t, m)
	if len(rep.Drills) != exp.Drills {
		t.Errorf("%d drill records, want %d", len(rep.Drills), exp.Drills)
	}
	forgotten, err := m.forgotten(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, f := range forgotten {
		gone = append(gone, f.ID.String())
	}
	sort.Strings(gone)
	if strings.Join(gone, " ") != strings.Join(exp.Forgotten, " ") {
		t.Errorf("forget records name %v, want %v", gone, exp.Forgotten)
	}
	marks, err := m.pruneMarks(ctx)
	if err != nil || len(marks) != exp.Marks {
		t.Errorf("%d prune marks (%v), want %d", len(marks), err, exp.Marks)
	}
	if _, err := m.Prune(ctx, PruneOptions{Grace: 100 * 365 * 24 * time.Hour, DryRun: true}); err != nil {
		t.Errorf("prune --dry-run: %v", err)
	}
	keys, revoked, err := m.Keys(ctx)
	if err != nil || len(keys) != 4 || len(revoked) != 1 {
		t.Errorf("keys: %d, revoked %v: %v", len(keys), revoked, err)
	}

	// Audit key: the same verdict; chunk lists walk to the recorded
	// lengths; the revoked writer's snapshot is a warning.
	a := open(t, be, ak)
	rep = mustAudit(t, a)
	if rep.Snapshots != len(exp.Snapshots) || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].What, exp.Revoked) {
		t.Errorf("audit: %d snapshots, warnings %v", rep.Snapshots, rep.Warnings)
	}
	asnaps, err := a.Snapshots(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range asnaps {
		want := exp.Snapshots[s.ID.String()]
		for i, ref := range s.Manifest.Streams {
			var n uint64
			if err := a.WalkStream(ctx, ref, func(e listEntry) error { n += uint64(e.Len); return nil }); err != nil {
				t.Fatal(err)
			}
			if i < len(want.Streams) && n != want.Streams[i].Len {
				t.Errorf("snapshot %s stream %d: the chunk list covers %d bytes, want %d", s.ID.Short(), i, n, want.Streams[i].Len)
			}
		}
	}

	// The revoked write key is refused.
	var rk crypto.KeyID
	for id := range revoked {
		rk = id
	}
	if rk.String() != exp.Revoked {
		t.Errorf("revoked key %s, want %s", rk, exp.Revoked)
	}
	if _, err := Open(ctx, be, parseKeyFile(t, compatFile(version, "revoked-write.key"), "").Write); !errors.Is(err, ErrWrongKey) {
		t.Errorf("opening with the revoked write key: %v", err)
	}

	// Write key: lists and verifies everything, finds the originals, and
	// its chain goes on in the old repository.
	w := open(t, be, wk)
	wsnaps, err := w.Snapshots(ctx, false)
	if err != nil || len(wsnaps) != len(exp.Snapshots) {
		t.Fatalf("write key lists %d snapshots: %v", len(wsnaps), err)
	}
	for _, want := range exp.Snapshots {
		orig, _ := hex.DecodeString(want.Original)
		if _, found, err := w.FindOriginal(ctx, [32]byte(orig)); err != nil || !found {
			t.Errorf("write key: FindOriginal(%s): %v %v", want.Name, found, err)
		}
	}
	next := ingest(t, w, "after upgrade", compatStreams(99)...)
	rep = mustAudit(t, a)
	if rep.Snapshots != len(exp.Snapshots)+1 {
		t.Errorf("audit after a new snapshot: %d snapshots", rep.Snapshots)
	}
	s, err := m.FindSnapshot(ctx, next.String())
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range s.Manifest.Streams {
		if got := readStream(t, m, ref); !bytes.Equal(got, compatStreams(99)[i]) {
			t.Errorf("new snapshot stream %d differs", i)
		}
	}
}

func parseKeyFile(t *testing.T, name, pass string) *crypto.KeyFile {
	t.Helper()
	var p []byte
	if pass != "" {
		p = []byte(pass)
	}
	kf, err := crypto.ParseKeyFile(mustReadFile(t, filepath.Join(compatDir, name)), p)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return kf
}

// compatStreams are small synthetic canonical streams: SQL-like text, a
// JSON export, random bytes (bulk), an empty stream and a byte.
func compatStreams(seed uint64) [][]byte {
	var sql, js bytes.Buffer
	for i := 0; i < 400; i++ {
		sql.WriteString("INSERT INTO posts (id, topic_id, raw) VALUES (")
		sql.WriteString(strings.Repeat("7", 1+i%5))
		sql.WriteString(", 12, 'a forum post, night ")
		sql.WriteByte(byte('0' + seed%10))
		sql.WriteString("');\n")
	}
	js.WriteString(`{"realm":"zulip","messages":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			js.WriteByte(',')
		}
		js.WriteString(`{"id":1,"content":"hello"}`)
	}
	js.WriteString("]}")
	return [][]byte{sql.Bytes(), randBytes(seed, 12_000+int(seed)), js.Bytes(), nil, {byte(seed)}}
}

// makeCompatFixture builds the fixture of a repository version and writes
// it to testdata.
func makeCompatFixture(t *testing.T, version int) {
	t.Logf("regenerating %s/%s", compatDir, compatFile(version, "repo.tar.gz"))
	crypto.TestOnlyFastKDF()
	ctx := context.Background()
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	mk, err := crypto.NewMasterKey(nil, uint64(pol))
	if err != nil {
		t.Fatal(err)
	}
	mkf, err := mk.MarshalKeyFile([]byte(compatMasterPass), nil)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "repo")
	be := backend.OpenLocal(root)
	ir, err := Init(ctx, be, mk, mkf)
	if err != nil {
		t.Fatal(err)
	}
	if version != repoVersion {
		// An older format: the code reads and writes it still.
		rewriteConfig(t, be, mk, func(c *Config) { c.Version = version })
		ir.Close()
		if ir, err = Open(ctx, be, mk); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	wk, err := mk.NewWriteKey("forum", now)
	if err != nil {
		t.Fatal(err)
	}
	old, err := mk.NewWriteKey("old-forum", now)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := mk.NewAuditKey("auditor", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*crypto.KeyRecord{wk.Record(), old.Record(), ak.Record()} {
		if err := ir.AddKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	ir.Close()
	wkf, err := wk.MarshalKeyFile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	akf, err := ak.MarshalKeyFile([]byte(compatAuditPass), nil)
	if err != nil {
		t.Fatal(err)
	}
	okf, err := old.MarshalKeyFile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	exp := compatExpected{Snapshots: map[string]compatSnapshot{}, Revoked: old.ID.String()}
	record := func(r *Repo, writer, name string, streams [][]byte) {
		id := ingest(t, r, name, streams...)
		h := sha256.New()
		cs := compatSnapshot{Name: name, Writer: writer}
		for _, s := range streams {
			h.Write(s)
			sum := sha256.Sum256(s)
			cs.Streams = append(cs.Streams, compatStream{Len: uint64(len(s)), SHA256: hex.EncodeToString(sum[:])})
		}
		cs.Original = hex.EncodeToString(h.Sum(nil))
		exp.Snapshots[id.String()] = cs
	}
	w := open(t, be, wk)
	for night := uint64(1); night <= 4; night++ {
		record(w, "forum", "forum-night-"+string(rune('0'+night)), compatStreams(night))
	}
	record(open(t, be, old), "old-forum", "old-forum-night-1", compatStreams(7))
	m := open(t, be, mk)
	record(m, "master", "master-upload", compatStreams(8))
	if err := m.Revoke(ctx, old.ID, "server retired", nil); err != nil {
		t.Fatal(err)
	}
	// Forget the forum's oldest nights: a forget record, then prune marks
	// (repacking the packs they shared) without deleting anything yet.
	plan, err := m.Forget(ctx, Policy{Last: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plan {
		if !d.Keep {
			exp.Forgotten = append(exp.Forgotten, d.Snapshot.ID.String())
			delete(exp.Snapshots, d.Snapshot.ID.String())
		}
	}
	sort.Strings(exp.Forgotten)
	res, err := m.Prune(ctx, PruneOptions{Grace: 100 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune: %+v", res)
	var drillOf ID
	for id := range exp.Snapshots {
		drillOf, _ = ParseID(id)
		break
	}
	if _, err := m.RecordDrill(ctx, &DrillRecord{Snapshot: drillOf, Time: time.Now().UTC(), Host: "drill-host", OK: true,
		Bytes: 1234, SHA256OK: true, Postgres: &PGDrill{Version: "17.2", Tables: 3, Rows: 400}}); err != nil {
		t.Fatal(err)
	}
	exp.Drills = 1
	marks, err := m.pruneMarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exp.Marks = len(marks)
	if n := listNames(t, be, backend.TypeLock); len(n) != 0 {
		t.Fatalf("lock objects left in the fixture: %v", n)
	}

	if err := os.MkdirAll(compatDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tarGz(t, root, filepath.Join(compatDir, compatFile(version, "repo.tar.gz")))
	for name, b := range map[string][]byte{"master.key": mkf, "write.key": wkf, "audit.key": akf, "revoked-write.key": okf} {
		if err := os.WriteFile(filepath.Join(compatDir, compatFile(version, name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eb, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(compatDir, compatFile(version, "expected.json")), append(eb, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixtureTime is the modification time of every file in the fixture.
var fixtureTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// tarGz writes the tree at root as a gzip-compressed tar, sorted, with
// fixed times and modes, so that the same repository gives the same file.
func tarGz(t *testing.T, root, dst string) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: fixtureTime, Format: tar.FormatUSTAR}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		case fi.Mode().IsRegular():
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		default:
			t.Fatalf("%s: not a file or folder", p)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(mustReadFile(t, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// untarGz unpacks a fixture made by tarGz into dst.
func untarGz(t *testing.T, src, dst string) {
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("fixture entry %q leaves the folder", h.Name)
		}
		p := filepath.Join(dst, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, b)
			os.Chtimes(p, h.ModTime, h.ModTime)
		default:
			t.Fatalf("fixture entry %q of type %c", h.Name, h.Typeflag)
		}
	}
}
