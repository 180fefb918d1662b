package crypto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	_, w, a := testKeys(t)
	msg := []byte("manifest bytes")
	sig, err := w.Sign(ContextManifest, msg)
	if err != nil {
		t.Fatal(err)
	}
	pub := w.Record().SignPub
	if err := Verify(pub, ContextManifest, msg, sig); err != nil {
		t.Fatal(err)
	}
	// Every byte of the signature, the message and the key matters.
	for i := range sig {
		for _, x := range []byte{0x01, 0x80} {
			if err := Verify(pub, ContextManifest, msg, flip(sig, i, x)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("signature byte %d ^ %#x: %v", i, x, err)
			}
		}
	}
	for i := range msg {
		if err := Verify(pub, ContextManifest, flip(msg, i, 1), sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("message byte %d: %v", i, err)
		}
	}
	for i := range pub {
		if err := Verify(flip(pub, i, 1), ContextManifest, msg, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("public key byte %d: %v", i, err)
		}
	}
	if err := Verify(a.Record().SignPub, ContextManifest, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key's public key: %v", err)
	}
	if err := Verify(pub, ContextManifest, msg, sig[:63]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("short signature: %v", err)
	}
	if err := Verify(pub[:31], ContextManifest, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("short key: %v", err)
	}
}

// TestSignatureDomainSeparation: a signature for one kind never verifies as
// another, including the boundary games the 0x00 separator prevents.
func TestSignatureDomainSeparation(t *testing.T) {
	m, w, _ := testKeys(t)
	msg := []byte("payload")
	sig, _ := w.Sign(ContextManifest, msg)
	for _, ctx := range []SigContext{"larder manifest v2", "larder manifests v1", "larder index v1", ContextCertificate, ContextRevocation} {
		if err := Verify(w.Record().SignPub, ctx, msg, sig); err == nil {
			t.Errorf("manifest signature verified under %q", ctx)
		}
	}
	// Plain Ed25519 over the message alone must not verify either.
	if ed25519.Verify(w.Record().SignPub, msg, sig) {
		t.Error("a context signature verified as a plain Ed25519 signature")
	}
	// A master-signed certificate body must not verify as a manifest, and
	// the generic Sign refuses the reserved contexts.
	c := w.Certificate
	body, _ := c.body()
	if err := Verify(m.SignPublic(), ContextManifest, body, c.Signature); err == nil {
		t.Error("a certificate signature verified as a manifest signature")
	}
	for _, ctx := range []SigContext{ContextCertificate, ContextRevocation} {
		if _, err := m.Sign(ctx, body); !errors.Is(err, ErrBadContext) {
			t.Errorf("Sign with reserved context %q: %v", ctx, err)
		}
	}
}

func TestSigContextForm(t *testing.T) {
	good := []SigContext{ContextManifest, ContextCertificate, ContextRevocation, "larder audit-report v12", "larder a v1", "larder pack header v3"}
	bad := []SigContext{"", "larder", "larder v1", "larder  v1", "larder manifest", "larder manifest v", "larder manifest v0",
		"larder manifest v01", "larder Manifest v1", "larder manifest\x00 v1", "Larder manifest v1", "larder manifest v1 ",
		"larder  manifest v1", "larder manifest  v1", "restic manifest v1", "larder manifest 1",
		SigContext("larder " + string(bytes.Repeat([]byte("x"), MaxContextLen)) + " v1")}
	for _, c := range good {
		if err := c.check(); err != nil {
			t.Errorf("%q rejected: %v", c, err)
		}
	}
	_, w, _ := testKeys(t)
	for _, c := range bad {
		if err := c.check(); !errors.Is(err, ErrBadContext) {
			t.Errorf("%q accepted", c)
		}
		if _, err := Sign(w.SignKey, c, nil); !errors.Is(err, ErrBadContext) {
			t.Errorf("Sign accepted %q", c)
		}
		if err := Verify(w.Record().SignPub, c, nil, make([]byte, 64)); !errors.Is(err, ErrBadContext) {
			t.Errorf("Verify accepted %q", c)
		}
	}
}

func TestSignErasedKeys(t *testing.T) {
	m, w, a := testKeys(t)
	m.Erase()
	w.Erase()
	a.Erase()
	for name, f := range map[string]func() ([]byte, error){
		"master": func() ([]byte, error) { return m.Sign(ContextManifest, nil) },
		"write":  func() ([]byte, error) { return w.Sign(ContextManifest, nil) },
		"audit":  func() ([]byte, error) { return a.Sign(ContextManifest, nil) },
	} {
		if _, err := f(); !errors.Is(err, ErrErased) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := m.NewWriteKey("x", time.Now()); !errors.Is(err, ErrErased) {
		t.Errorf("NewWriteKey: %v", err)
	}
	if _, err := m.NewAuditKey("x", time.Now()); !errors.Is(err, ErrErased) {
		t.Errorf("NewAuditKey: %v", err)
	}
	if _, err := m.Revoke(w.ID, "", time.Now()); !errors.Is(err, ErrErased) {
		t.Errorf("Revoke: %v", err)
	}
	if _, err := m.Record(); !errors.Is(err, ErrErased) {
		t.Errorf("Record: %v", err)
	}
	if _, err := m.OpenSealed(nil, nil); !errors.Is(err, ErrErased) {
		t.Errorf("OpenSealed: %v", err)
	}
	if _, err := a.OpenSealed(nil, nil); !errors.Is(err, ErrErased) {
		t.Errorf("audit OpenSealed: %v", err)
	}
	if _, err := a.OpenSession([32]byte{9}); !errors.Is(err, ErrErased) {
		t.Errorf("audit OpenSession: %v", err)
	}
	for name, b := range map[string][]byte{
		"master box": m.BoxKey.Private[:], "master audit box": m.AuditBoxKey.Private[:], "master sign": m.SignKey,
		"master chunk-ID": m.ChunkIDKey[:], "master index": m.IndexKey[:], "write sign": w.SignKey,
		"write chunk-ID": w.ChunkIDKey[:], "write index": w.IndexKey[:], "audit box": a.BoxKey.Private[:],
		"audit sign": a.SignKey, "audit index": a.IndexKey[:],
	} {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("Erase left %s key bytes behind", name)
		}
	}
	if m.ChunkerPoly != 0 || w.ChunkerPoly != 0 {
		t.Error("Erase left the chunker polynomial behind")
	}
}
