package crypto

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The golden files pin every format this package writes (STYLE rule 8):
// key files of each role, certificates, a revocation, a sealed object, and
// text vectors for the session derivation, the object AEAD, chunk IDs,
// padding and signatures. They are made from fixed keys and deterministic
// randomness; if a change to the code changes them, the format changed:
// bump its version instead, or run `go test ./crypto -run Golden -update`
// only if the change is deliberate and nothing was ever written in the
// old form.

const goldenDir = "testdata/golden"

var (
	goldenPass      = []byte("larder golden passphrase")
	goldenKDF       = KDFParams{Time: 2, MemoryKiB: 256, Threads: 2}
	goldenPlaintext = []byte("snapshot manifest: forum-2026-01-02.tar.gz")
	goldenAD        = []byte("manifest 0001")
)

// goldenFiles builds every golden file from scratch.
func goldenFiles(t testing.TB) map[string][]byte {
	m, w, a := testKeys(t)
	files := map[string][]byte{}
	var err error
	if files["master.key"], err = m.marshalKeyFile(newDetReader("golden master key file"), goldenPass, &goldenKDF); err != nil {
		t.Fatal(err)
	}
	if files["write.key"], err = w.marshalKeyFile(newDetReader("golden write key file"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if files["audit.key"], err = a.marshalKeyFile(newDetReader("golden audit key file"), goldenPass, &goldenKDF); err != nil {
		t.Fatal(err)
	}
	mr, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*KeyRecord{"master": mr, "write": w.Record(), "audit": a.Record()} {
		if files["certificate-"+name+".bin"], err = r.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := m.Revoke(w.ID, "server retired", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	if files["revocation.bin"], err = rev.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if files["sealed.bin"], err = SealTo(newDetReader("golden sealed"), goldenPlaintext, goldenAD, w.MasterBoxPub, w.AuditBoxPub); err != nil {
		t.Fatal(err)
	}

	var v strings.Builder
	line := func(name string, b []byte) { fmt.Fprintf(&v, "%s: %s\n", name, hex.EncodeToString(b)) }
	fmt.Fprintf(&v, "# larder crypto test vectors; see golden_test.go and docs/format/keys.md\n")
	line("master.id", m.ID[:])
	line("master.box.public", m.BoxKey.Public[:])
	line("master.auditbox.public", m.AuditBoxKey.Public[:])
	line("master.sign.public", m.SignPublic())
	line("write.id", w.ID[:])
	line("write.sign.public", w.Record().SignPub)

	s, err := NewSession(newDetReader("golden session"), w.MasterBoxPub, w.AuditBoxPub)
	if err != nil {
		t.Fatal(err)
	}
	eph := s.EphemeralPublic()
	line("session.ephemeral.public", eph[:])
	line("session.data.key", s.data[:])
	line("session.meta.key", s.meta[:])

	key := testKey("golden aead key")
	var nonce [NonceSize]byte
	newDetReader("golden aead nonce").Read(nonce[:])
	line("aead.key", key[:])
	line("aead.nonce", nonce[:])
	line("aead.type", []byte{0x42})
	line("aead.id", []byte("chunk-id"))
	line("aead.plaintext", []byte("hello, forum"))
	line("aead.sealed", NewRandomNonceAEAD(key).sealWithNonce(nil, &nonce, []byte("hello, forum"), objectAD(0x42, []byte("chunk-id"))))

	line("chunkid.key", m.ChunkIDKey[:])
	line("chunkid.data", []byte("SELECT 1;\n"))
	id := ChunkID(&m.ChunkIDKey, []byte("SELECT 1;\n"))
	line("chunkid.id", id[:])

	line("pad.input", []byte("twelve bytes"))
	line("pad.output", Pad(nil, []byte("twelve bytes")))

	sig, err := w.Sign(ContextManifest, goldenPlaintext)
	if err != nil {
		t.Fatal(err)
	}
	line("sign.context", []byte(ContextManifest))
	line("sign.message", goldenPlaintext)
	line("sign.signature", sig)
	files["vectors.txt"] = []byte(v.String())
	return files
}

func TestGolden(t *testing.T) {
	files := goldenFiles(t)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Errorf("%v (run with -update to create it)", err)
			continue
		}
		if !bytes.Equal(files[name], want) {
			t.Errorf("%s: the format changed: got\n%x\nwant\n%x", name, files[name], want)
		}
	}
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%s holds %d files, the test makes %d: remove strays or add them here", goldenDir, len(entries), len(files))
	}
}

// TestGoldenFilesOpen reads the committed files (not regenerated ones):
// old files must keep opening, whatever the writing code does.
func TestGoldenFilesOpen(t *testing.T) {
	m, w, a := testKeys(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kf, err := ParseKeyFile(read("master.key"), goldenPass)
	if err != nil {
		t.Fatal(err)
	}
	if kf.KDF != goldenKDF || kf.Master.ID != m.ID || kf.Master.BoxKey != m.BoxKey || kf.Master.ChunkIDKey != m.ChunkIDKey ||
		!kf.Master.SignKey.Equal(m.SignKey) || kf.Master.ChunkerPoly != testPoly {
		t.Fatal("golden master key file decodes to another key")
	}
	kf, err = ParseKeyFile(read("write.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Protected || kf.Write.ID != w.ID || !kf.Write.SignKey.Equal(w.SignKey) || kf.Write.Name != "forum.example.org nightly" {
		t.Fatal("golden write key file decodes to another key")
	}
	kf, err = ParseKeyFile(read("audit.key"), goldenPass)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Audit.ID != a.ID || kf.Audit.BoxKey != m.AuditBoxKey {
		t.Fatal("golden audit key file decodes to another key")
	}
	for _, name := range []string{"master", "write", "audit"} {
		r, err := ParseKeyRecord(read("certificate-" + name + ".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(m.SignPublic()); err != nil || r.Role.String() != name {
			t.Fatalf("golden %s certificate: %v", name, err)
		}
	}
	rev, err := ParseRevocation(read("revocation.bin"))
	if err != nil || rev.Verify(m.SignPublic()) != nil || rev.KeyID != w.ID || rev.Reason != "server retired" {
		t.Fatalf("golden revocation: %v", err)
	}
	for _, priv := range [][32]byte{m.BoxKey.Private, a.BoxKey.Private} {
		pt, err := OpenSealed(read("sealed.bin"), goldenAD, priv)
		if err != nil || !bytes.Equal(pt, goldenPlaintext) {
			t.Fatalf("golden sealed object: %v", err)
		}
	}

	// The text vectors, checked through the opening side.
	vec := map[string][]byte{}
	for _, l := range strings.Split(strings.TrimSpace(string(read("vectors.txt"))), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, hx, ok := strings.Cut(l, ": ")
		b, err := hex.DecodeString(hx)
		if !ok || err != nil {
			t.Fatalf("vectors.txt line %q", l)
		}
		vec[name] = b
	}
	var eph [32]byte
	copy(eph[:], vec["session.ephemeral.public"])
	mk, err := m.OpenSession(eph)
	if err != nil || !bytes.Equal(mk.data[:], vec["session.data.key"]) || !bytes.Equal(mk.meta[:], vec["session.meta.key"]) {
		t.Fatalf("session vector: %v", err)
	}
	ak, _ := a.OpenSession(eph)
	if !bytes.Equal(ak.meta[:], vec["session.meta.key"]) {
		t.Fatal("session vector: audit meta key")
	}
	var key [KeySize]byte
	copy(key[:], vec["aead.key"])
	pt, err := Open(nil, &key, vec["aead.type"][0], vec["aead.id"], vec["aead.sealed"])
	if err != nil || !bytes.Equal(pt, vec["aead.plaintext"]) || !bytes.Equal(vec["aead.sealed"][:NonceSize], vec["aead.nonce"]) {
		t.Fatalf("aead vector: %v", err)
	}
	copy(key[:], vec["chunkid.key"])
	if id := ChunkID(&key, vec["chunkid.data"]); !bytes.Equal(id[:], vec["chunkid.id"]) {
		t.Fatal("chunk ID vector")
	}
	if u, err := Unpad(vec["pad.output"]); err != nil || !bytes.Equal(u, vec["pad.input"]) {
		t.Fatalf("padding vector: %v", err)
	}
	if err := Verify(vec["write.sign.public"], SigContext(vec["sign.context"]), vec["sign.message"], vec["sign.signature"]); err != nil {
		t.Fatalf("signature vector: %v", err)
	}
}
