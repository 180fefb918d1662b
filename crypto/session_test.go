package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestSessionRoundTrip(t *testing.T) {
	m, w, a := testKeys(t)
	s, err := w.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Erase()
	mk, err := m.OpenSession(s.EphemeralPublic())
	if err != nil {
		t.Fatal(err)
	}
	ak, err := a.OpenSession(s.EphemeralPublic())
	if err != nil {
		t.Fatal(err)
	}
	if !mk.HasDataKey() || ak.HasDataKey() {
		t.Fatalf("HasDataKey: master %v, audit %v", mk.HasDataKey(), ak.HasDataKey())
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := pattern(n)
			id := []byte(fmt.Sprint("chunk ", n))
			data, err := s.SealData(nil, 1, id, pt)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := s.SealMeta(nil, 2, id, pt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := mk.OpenData(nil, 1, id, data); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("master OpenData: %v", err)
			}
			if got, err := mk.OpenMeta(nil, 2, id, meta); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("master OpenMeta: %v", err)
			}
			if got, err := ak.OpenMeta(nil, 2, id, meta); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("audit OpenMeta: %v", err)
			}
			if _, err := ak.OpenData(nil, 1, id, data); !errors.Is(err, ErrNoDataKey) {
				t.Fatalf("audit OpenData: %v, want ErrNoDataKey", err)
			}
			// Data and meta keys are different keys.
			if _, err := mk.OpenMeta(nil, 1, id, data); err != ErrAuthFailed {
				t.Fatalf("meta key opened data: %v", err)
			}
			if _, err := ak.OpenMeta(nil, 1, id, data); err != ErrAuthFailed {
				t.Fatalf("audit meta key opened data: %v", err)
			}
		})
	}
}

func TestSessionsDiffer(t *testing.T) {
	m, w, _ := testKeys(t)
	s1, _ := w.NewSession(nil)
	s2, _ := w.NewSession(nil)
	if s1.EphemeralPublic() == s2.EphemeralPublic() {
		t.Fatal("two sessions share an ephemeral key")
	}
	if s1.data == s2.data || s1.meta == s2.meta || s1.data == s1.meta {
		t.Fatal("session keys repeat")
	}
	sealed, _ := s1.SealData(nil, 1, nil, []byte("x"))
	k2, _ := m.OpenSession(s2.EphemeralPublic())
	if _, err := k2.OpenData(nil, 1, nil, sealed); err != ErrAuthFailed {
		t.Fatalf("session 2's keys opened session 1's data: %v", err)
	}
}

// writerSecrets lists every 32-byte value a stolen write key (and an erased
// session) gives an attacker, to try as a symmetric key and as an X25519
// private key.
func writerSecrets(w *WriteKey, s *Session) [][32]byte {
	var out [][32]byte
	add := func(b []byte) {
		var k [32]byte
		copy(k[:], b)
		out = append(out, k)
	}
	add(w.ChunkIDKey[:])
	add(w.IndexKey[:])
	add(w.SignKey.Seed())
	add(w.SignKey[32:])
	add(w.MasterBoxPub[:])
	add(w.AuditBoxPub[:])
	add(w.MasterSignPub)
	add(s.data[:])
	add(s.meta[:])
	eph := s.EphemeralPublic()
	add(eph[:])
	add(make([]byte, 32))
	return out
}

// TestStolenWriteKeyOpensNothing is the design's promise: a write key (with
// everything a finished session leaves in memory) opens no chunk, no
// metadata and no manifest already stored, including its own.
func TestStolenWriteKeyOpensNothing(t *testing.T) {
	m, w, a := testKeys(t)
	id := []byte("chunk")
	pt := []byte("a forum post nobody should read")

	earlier, err := w.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	oldData, _ := earlier.SealData(nil, 1, id, pt)
	oldMeta, _ := earlier.SealMeta(nil, 2, id, pt)
	manifest, err := SealTo(nil, pt, []byte("manifest"), w.MasterBoxPub, w.AuditBoxPub)
	if err != nil {
		t.Fatal(err)
	}
	earlier.Erase()

	// Erase really zeroes, and sealing afterwards fails.
	if earlier.data != ([32]byte{}) || earlier.meta != ([32]byte{}) {
		t.Fatal("Erase left key bytes behind")
	}
	if _, err := earlier.SealData(nil, 1, id, pt); !errors.Is(err, ErrErased) {
		t.Fatalf("SealData after Erase: %v", err)
	}
	if _, err := earlier.SealMeta(nil, 1, id, pt); !errors.Is(err, ErrErased) {
		t.Fatalf("SealMeta after Erase: %v", err)
	}

	// A later, live session of the same write key.
	current, _ := w.NewSession(nil)
	defer current.Erase()

	eph := earlier.EphemeralPublic()
	secrets := append(writerSecrets(w, earlier), writerSecrets(w, current)...)
	for i, k := range secrets {
		// As a symmetric key.
		if _, err := Open(nil, &k, 1, id, oldData); err == nil {
			t.Errorf("secret %d opened old chunk data", i)
		}
		if _, err := Open(nil, &k, 2, id, oldMeta); err == nil {
			t.Errorf("secret %d opened old metadata", i)
		}
		// As an X25519 private key, in every derivation.
		for _, label := range []string{labelSessionData, labelSessionMeta} {
			for _, pub := range [][32]byte{eph, w.MasterBoxPub, w.AuditBoxPub} {
				dk, err := deriveSessionKey(&k, &pub, &eph, &w.MasterBoxPub, &w.AuditBoxPub, label)
				if err != nil {
					continue
				}
				if _, err := Open(nil, &dk, 1, id, oldData); err == nil {
					t.Errorf("secret %d as X25519 key opened old chunk data", i)
				}
				if _, err := Open(nil, &dk, 2, id, oldMeta); err == nil {
					t.Errorf("secret %d as X25519 key opened old metadata", i)
				}
			}
		}
		if _, err := OpenSealed(manifest, []byte("manifest"), k); err == nil {
			t.Errorf("secret %d opened the manifest", i)
		}
	}
	// The current session's own keys do not open the earlier session.
	if _, err := Open(nil, &current.data, 1, id, oldData); err == nil {
		t.Error("a later session's data key opened an earlier session")
	}

	// The key holders still can.
	mk, _ := m.OpenSession(eph)
	if got, err := mk.OpenData(nil, 1, id, oldData); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("master cannot open the old session: %v", err)
	}
	ak, _ := a.OpenSession(eph)
	if got, err := ak.OpenMeta(nil, 2, id, oldMeta); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("auditor cannot open old metadata: %v", err)
	}
	if got, err := a.OpenSealed(manifest, []byte("manifest")); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("auditor cannot open the manifest: %v", err)
	}
}

// TestAuditKeyCannotDeriveDataKey tries every secret an audit key holds,
// in every derivation, against chunk data.
func TestAuditKeyCannotDeriveDataKey(t *testing.T) {
	m, w, a := testKeys(t)
	s, _ := w.NewSession(nil)
	defer s.Erase()
	id := []byte("chunk")
	data, _ := s.SealData(nil, 1, id, []byte("chunk content"))
	eph := s.EphemeralPublic()

	ak, err := a.OpenSession(eph)
	if err != nil {
		t.Fatal(err)
	}
	mk, _ := m.OpenSession(eph)
	if ak.meta != mk.meta || ak.meta == mk.data {
		t.Fatal("audit meta key differs from the master's, or equals the data key")
	}
	if ak.data != ([32]byte{}) {
		t.Fatal("audit session keys hold a data key")
	}
	var cands [][32]byte
	for _, b := range [][]byte{a.BoxKey.Private[:], a.BoxKey.Public[:], a.IndexKey[:], a.MasterBoxPub[:],
		a.MasterSignPub, a.SignKey.Seed(), ak.meta[:], eph[:]} {
		var k [32]byte
		copy(k[:], b)
		cands = append(cands, k)
	}
	for i, k := range cands {
		if _, err := Open(nil, &k, 1, id, data); err == nil {
			t.Errorf("audit secret %d opened data directly", i)
		}
		for _, pub := range [][32]byte{eph, a.MasterBoxPub, a.BoxKey.Public} {
			for _, label := range []string{labelSessionData, labelSessionMeta} {
				dk, err := deriveSessionKey(&k, &pub, &eph, &a.MasterBoxPub, &a.BoxKey.Public, label)
				if err != nil {
					continue
				}
				if dk == mk.data {
					t.Fatalf("audit secret %d derived the data key", i)
				}
				if _, err := Open(nil, &dk, 1, id, data); err == nil {
					t.Errorf("audit secret %d derived a key that opened data", i)
				}
			}
		}
	}
}

func TestSessionErrors(t *testing.T) {
	m, w, a := testKeys(t)
	if _, err := NewSession(nil, w.MasterBoxPub, w.MasterBoxPub); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("same master and audit key: %v", err)
	}
	// A low-order point as a recipient or as an ephemeral key.
	var low [32]byte // the all-zero point has order 1
	if _, err := NewSession(nil, low, w.AuditBoxPub); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("low-order master key: %v", err)
	}
	if _, err := m.OpenSession(low); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("master OpenSession of a low-order point: %v", err)
	}
	if _, err := a.OpenSession(low); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("audit OpenSession of a low-order point: %v", err)
	}
	if _, err := NewSession(bytes.NewReader(nil), w.MasterBoxPub, w.AuditBoxPub); err == nil {
		t.Error("NewSession with an empty random source succeeded")
	}

	s, _ := w.NewSession(nil)
	sealed, _ := s.SealData(nil, 1, nil, []byte("x"))
	mk, _ := m.OpenSession(s.EphemeralPublic())
	mk.Erase()
	if _, err := mk.OpenData(nil, 1, nil, sealed); !errors.Is(err, ErrErased) {
		t.Errorf("OpenData after Erase: %v", err)
	}
	if _, err := mk.OpenMeta(nil, 1, nil, sealed); !errors.Is(err, ErrErased) {
		t.Errorf("OpenMeta after Erase: %v", err)
	}
	if mk.data != ([32]byte{}) || mk.meta != ([32]byte{}) || mk.HasDataKey() {
		t.Error("SessionKeys.Erase left keys behind")
	}
	m.Erase()
	if _, err := m.OpenSession(s.EphemeralPublic()); !errors.Is(err, ErrErased) {
		t.Errorf("OpenSession with an erased master key: %v", err)
	}
	w.Erase()
	if _, err := w.NewSession(nil); !errors.Is(err, ErrErased) {
		t.Errorf("NewSession with an erased write key: %v", err)
	}
}
