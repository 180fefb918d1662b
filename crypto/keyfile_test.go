package crypto

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

var testPass = []byte("correct horse battery staple")

// must returns a function that fails t on an error and returns b, so
// that must(t)(k.MarshalKeyFile(...)) reads as one call.
func must(t testing.TB) func(b []byte, err error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	m, w, a := testKeys(t)

	mb := must(t)(m.MarshalKeyFile(testPass, nil))
	kf, err := ParseKeyFile(mb, testPass)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Role != RoleMaster || !kf.Protected || kf.ID != m.ID || kf.Master == nil || kf.Write != nil || kf.Audit != nil {
		t.Fatalf("master header %+v", kf.KeyFileHeader)
	}
	if kf.KDF != fastKDFParams {
		t.Fatalf("KDF %+v, want the TestOnlyFastKDF parameters", kf.KDF)
	}
	got := kf.Master
	if got.ID != m.ID || got.Name != m.Name || !got.Created.Equal(m.Created) || got.BoxKey != m.BoxKey ||
		got.AuditBoxKey != m.AuditBoxKey || !got.SignKey.Equal(m.SignKey) || got.ChunkerPoly != m.ChunkerPoly ||
		got.ChunkIDKey != m.ChunkIDKey || got.IndexKey != m.IndexKey {
		t.Fatal("master key changed in the round trip")
	}

	wb := must(t)(w.MarshalKeyFile(nil, nil))
	kf, err = ParseKeyFile(wb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Role != RoleWrite || kf.Protected || kf.KDF != (KDFParams{}) || kf.Write == nil {
		t.Fatalf("write header %+v", kf.KeyFileHeader)
	}
	gw := kf.Write
	if gw.ID != w.ID || gw.Name != w.Name || !gw.Created.Equal(w.Created) || gw.ChunkerPoly != w.ChunkerPoly ||
		gw.ChunkIDKey != w.ChunkIDKey || gw.IndexKey != w.IndexKey || gw.MasterBoxPub != w.MasterBoxPub ||
		gw.AuditBoxPub != w.AuditBoxPub || !gw.MasterSignPub.Equal(w.MasterSignPub) || !gw.SignKey.Equal(w.SignKey) {
		t.Fatal("write key changed in the round trip")
	}
	// A passphrase given for an unprotected file is ignored.
	if _, err := ParseKeyFile(wb, []byte("whatever")); err != nil {
		t.Fatal(err)
	}
	// A write key may also be protected.
	wpb := must(t)(w.MarshalKeyFile(testPass, nil))
	if kf, err := ParseKeyFile(wpb, testPass); err != nil || !kf.Protected || kf.Write == nil {
		t.Fatalf("protected write key: %v", err)
	}

	ab := must(t)(a.MarshalKeyFile(testPass, nil))
	kf, err = ParseKeyFile(ab, testPass)
	if err != nil {
		t.Fatal(err)
	}
	ga := kf.Audit
	if kf.Role != RoleAudit || ga == nil || ga.ID != a.ID || ga.Name != a.Name || ga.BoxKey != a.BoxKey ||
		ga.IndexKey != a.IndexKey || ga.MasterBoxPub != a.MasterBoxPub || !ga.SignKey.Equal(a.SignKey) {
		t.Fatal("audit key changed in the round trip")
	}

	// The reloaded keys still work together.
	s, err := gw.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := s.SealData(nil, 1, nil, []byte("data"))
	meta, _ := s.SealMeta(nil, 2, nil, []byte("meta"))
	s.Erase()
	mk, _ := got.OpenSession(s.EphemeralPublic())
	ak, _ := ga.OpenSession(s.EphemeralPublic())
	if _, err := mk.OpenData(nil, 1, nil, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := ak.OpenMeta(nil, 2, nil, meta); err != nil {
		t.Fatal(err)
	}
	// Two files of the same key differ (fresh salt and nonce).
	mb2 := must(t)(m.MarshalKeyFile(testPass, nil))
	if bytes.Equal(mb, mb2) {
		t.Fatal("two key files of the same key are identical")
	}
}

func TestKeyFilePassphrases(t *testing.T) {
	m, _, _ := testKeys(t)
	b := must(t)(m.MarshalKeyFile(testPass, nil))
	for _, p := range [][]byte{[]byte("wrong"), testPass[:len(testPass)-1], append(append([]byte(nil), testPass...), ' '),
		bytes.Repeat([]byte("x"), MaxPassphraseLen+1)} {
		kf, err := ParseKeyFile(b, p)
		if !errors.Is(err, ErrWrongPassphrase) || kf != nil {
			t.Errorf("passphrase %.20q: %v", p, err)
		}
	}
	if _, err := ParseKeyFile(b, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("no passphrase: %v", err)
	}
	if _, err := m.MarshalKeyFile(bytes.Repeat([]byte("x"), MaxPassphraseLen+1), nil); err == nil {
		t.Error("an overlong passphrase was accepted")
	}
}

// sealUnprotected builds a well-formed, correctly sealed passphrase-less
// key file for any role, bypassing marshalKeyFile's refusal.
func sealUnprotected(t *testing.T, role Role, id KeyID, payload []byte) []byte {
	h := &KeyFileHeader{Version: keyFileVersion, Role: role, ID: id}
	header := h.encode()
	aead, _ := chacha20poly1305.NewX(noPassphraseKey[:])
	return aead.Seal(header, h.nonce[:], payload, header)
}

func TestUnprotectedOnlyForWriteKeys(t *testing.T) {
	m, w, a := testKeys(t)
	if _, err := m.MarshalKeyFile(nil, nil); !errors.Is(err, ErrUnprotectedKey) {
		t.Errorf("master without passphrase: %v", err)
	}
	if _, err := a.MarshalKeyFile([]byte{}, nil); !errors.Is(err, ErrUnprotectedKey) {
		t.Errorf("audit without passphrase: %v", err)
	}
	mp, _ := m.encodePayload()
	ap, _ := a.encodePayload()
	wp, _ := w.encodePayload()
	if _, err := ParseKeyFile(sealUnprotected(t, RoleWrite, w.ID, wp), nil); err != nil {
		t.Fatalf("the crafting helper is broken: %v", err)
	}
	for _, c := range []struct {
		role    Role
		id      KeyID
		payload []byte
	}{{RoleMaster, m.ID, mp}, {RoleAudit, a.ID, ap}} {
		b := sealUnprotected(t, c.role, c.id, c.payload)
		if _, err := ParseKeyFile(b, nil); !errors.Is(err, ErrUnprotectedKey) {
			t.Errorf("unprotected %s key file: %v", c.role, err)
		}
		if _, err := ParseKeyFile(b, testPass); !errors.Is(err, ErrUnprotectedKey) {
			t.Errorf("unprotected %s key file with a passphrase: %v", c.role, err)
		}
		if _, err := ParseKeyFileHeader(b); !errors.Is(err, ErrUnprotectedKey) {
			t.Errorf("unprotected %s key file header: %v", c.role, err)
		}
	}
	// A write key file whose role byte claims master is refused too.
	wb := must(t)(w.MarshalKeyFile(nil, nil))
	wb[len(keyFileMagic)+1] = byte(RoleMaster)
	if _, err := ParseKeyFile(wb, nil); !errors.Is(err, ErrUnprotectedKey) {
		t.Errorf("write file relabelled master: %v", err)
	}
}

// TestKeyFileDetectsEveryTamperedByte flips each byte of a protected and an
// unprotected key file; none may parse.
func TestKeyFileDetectsEveryTamperedByte(t *testing.T) {
	m, w, _ := testKeys(t)
	files := map[string][]byte{
		"master protected":  must(t)(m.MarshalKeyFile(testPass, nil)),
		"write unprotected": must(t)(w.MarshalKeyFile(nil, nil)),
	}
	for name, b := range files {
		for i := range b {
			for _, x := range []byte{0x01, 0x80} {
				kf, err := ParseKeyFile(flip(b, i, x), testPass)
				if err == nil || kf != nil {
					t.Fatalf("%s: byte %d ^ %#x went unnoticed", name, i, x)
				}
				if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrAuthFailed) && !errors.Is(err, ErrMalformed) &&
					!errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrUnprotectedKey) {
					t.Fatalf("%s: byte %d: unexpected error %v", name, i, err)
				}
			}
		}
		for l := range len(b) {
			if _, err := ParseKeyFile(b[:l], testPass); err == nil {
				t.Fatalf("%s: truncated to %d bytes parsed", name, l)
			}
		}
		if _, err := ParseKeyFile(append(append([]byte(nil), b...), 0), testPass); err == nil {
			t.Fatalf("%s: a trailing byte went unnoticed", name)
		}
	}
}

func TestKeyFileHeaderBounds(t *testing.T) {
	m, _, _ := testKeys(t)
	b := must(t)(m.MarshalKeyFile(testPass, nil))
	h, err := ParseKeyFileHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || h.Role != RoleMaster || h.ID != m.ID || !h.Protected || h.KDF != fastKDFParams {
		t.Fatalf("header %+v", h)
	}
	off := len(keyFileMagic) + 3 + KeyIDSize // the KDF parameters
	set := func(time, mem uint32, threads uint8) []byte {
		c := append([]byte(nil), b...)
		c[off], c[off+1], c[off+2], c[off+3] = byte(time>>24), byte(time>>16), byte(time>>8), byte(time)
		c[off+4], c[off+5], c[off+6], c[off+7] = byte(mem>>24), byte(mem>>16), byte(mem>>8), byte(mem)
		c[off+8] = threads
		return c
	}
	for _, p := range []KDFParams{{0, 64, 1}, {MaxKDFTime + 1, 64, 1}, {1, MaxKDFMemoryKiB + 1, 1}, {1, 7, 1},
		{1, 64, 0}, {1, 64, 9}, {1, 1 << 20, MaxKDFThreads + 1}, {1 << 31, 1 << 31, 255}} {
		start := time.Now()
		_, err := ParseKeyFile(set(p.Time, p.MemoryKiB, p.Threads), testPass)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("KDF %+v: %v", p, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("KDF %+v: refusing took %v: the bound was checked after deriving", p, d)
		}
	}
	if _, err := ParseKeyFile(make([]byte, MaxKeyFileSize+1), testPass); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized: %v", err)
	}
	v := append([]byte(nil), b...)
	v[len(keyFileMagic)] = 2
	if _, err := ParseKeyFile(v, testPass); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 2: %v", err)
	}
	v[len(keyFileMagic)] = 0
	if _, err := ParseKeyFile(v, testPass); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 0: %v", err)
	}
	for _, prot := range []byte{0, 3, 255} {
		v := append([]byte(nil), b...)
		v[len(keyFileMagic)+2] = prot
		if _, err := ParseKeyFile(v, testPass); !errors.Is(err, ErrMalformed) {
			t.Errorf("protection %d: %v", prot, err)
		}
	}
	if _, err := ParseKeyFile([]byte("not a key file at all, just text"), testPass); !errors.Is(err, ErrMalformed) {
		t.Errorf("text: %v", err)
	}
}

func TestKDFFloors(t *testing.T) {
	m, _, _ := testKeys(t)
	fastKDF.Store(false)
	defer fastKDF.Store(true)
	for _, p := range []KDFParams{fastKDFParams, {MinKDFTime - 1, MinKDFMemoryKiB, 1}, {MinKDFTime, MinKDFMemoryKiB - 1, 1}} {
		if _, err := m.MarshalKeyFile(testPass, &p); !errors.Is(err, ErrWeakKDF) {
			t.Errorf("KDF %+v accepted: %v", p, err)
		}
	}
	// The floors apply to making files, not to reading them: a file made
	// with weak parameters (under TestOnlyFastKDF) still opens.
	fastKDF.Store(true)
	b := must(t)(m.MarshalKeyFile(testPass, nil))
	fastKDF.Store(false)
	if _, err := ParseKeyFile(b, testPass); err != nil {
		t.Fatal(err)
	}
}

func TestKDFCalibration(t *testing.T) {
	check := func(name string, p KDFParams) {
		t.Helper()
		if p.Time < MinKDFTime || p.Time > MaxKDFTime || p.MemoryKiB != DefaultKDFMemoryKiB ||
			p.Threads < 1 || p.Threads > maxCalibThreads || int(p.Threads) > max(runtime.NumCPU(), 1) {
			t.Errorf("%s: parameters %+v out of bounds", name, p)
		}
		if err := p.check(true); err != nil {
			t.Errorf("%s: calibrated parameters rejected: %v", name, err)
		}
	}
	// Simulated machines.
	for _, c := range []struct {
		pass time.Duration
		want uint32
	}{
		{time.Nanosecond, MaxKDFTime},         // absurdly fast: capped
		{0, MaxKDFTime},                       // clock too coarse: capped, no division by zero
		{10 * time.Second, MinKDFTime},        // very slow: the floor
		{100 * time.Millisecond, 5},           // 500 ms / 100 ms
		{30 * time.Millisecond, 17},           // rounded up
		{167 * time.Millisecond, MinKDFTime},  // ceil(2.99) = the floor
		{DefaultKDFTarget / 100, 100},         // within range
		{DefaultKDFTarget / 1000, MaxKDFTime}, // above the ceiling
	} {
		p := calibrate(DefaultKDFTarget, func(KDFParams) time.Duration { return c.pass })
		if p.Time != c.want {
			t.Errorf("one pass in %v: time %d, want %d", c.pass, p.Time, c.want)
		}
		check(c.pass.String(), p)
	}
	// This machine, for real (a short target keeps the test fast).
	p := CalibrateKDF(50 * time.Millisecond)
	check("real", p)
	t.Logf("calibrated for 50ms: %+v", p)
}

func TestWriteKeyFileAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "write.key")
	_, w, _ := testKeys(t)
	data := must(t)(w.MarshalKeyFile(nil, nil))
	if err := WriteKeyFile(path, data); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	fi, _ := os.Stat(path)
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := CheckKeyFileMode(path); err != nil {
		t.Fatalf("0600 file: %v", err)
	}
	// Replacing keeps the mode and leaves no temporary files.
	if err := WriteKeyFile(path, data[:10]); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after two writes", len(entries))
	}
	if runtime.GOOS == "windows" {
		return
	}
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		os.Chmod(path, mode)
		err := CheckKeyFileMode(path)
		var me *KeyFileModeError
		if !errors.As(err, &me) || !errors.Is(err, ErrKeyFileMode) || me.Mode != mode || me.Path != path {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if err := CheckKeyFileMode(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	if err := CheckKeyFileMode(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrKeyFileMode) {
		t.Errorf("missing file: %v", err)
	}
	if err := CheckKeyFileMode(dir); err == nil || errors.Is(err, ErrKeyFileMode) {
		t.Errorf("directory: %v", err)
	}
	if err := WriteKeyFile(filepath.Join(dir, "no", "such", "dir"), data); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
