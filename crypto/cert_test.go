package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCertificates(t *testing.T) {
	m, w, a := testKeys(t)
	mr, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*KeyRecord{mr, w.Record(), a.Record()} {
		t.Run(r.Role.String(), func(t *testing.T) {
			if err := r.Verify(m.SignPublic()); err != nil {
				t.Fatal(err)
			}
			b, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxCertificateSize {
				t.Fatalf("%d bytes exceeds MaxCertificateSize", len(b))
			}
			var back KeyRecord
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if err := back.Verify(m.SignPublic()); err != nil {
				t.Fatal(err)
			}
			if back.ID != r.ID || back.Role != r.Role || back.Name != r.Name || !back.Created.Equal(fixedTime) ||
				!bytes.Equal(back.SignPub, r.SignPub) || back.BoxPub != r.BoxPub {
				t.Fatalf("round trip changed the record: %+v vs %+v", back, r)
			}
			again, _ := back.MarshalBinary()
			if !bytes.Equal(again, b) {
				t.Fatal("encoding is not canonical")
			}
			// Every byte is covered: it either fails to parse or fails to verify.
			for i := range b {
				for _, x := range []byte{0x01, 0x80} {
					c, err := ParseCertificate(flip(b, i, x))
					if err == nil {
						err = c.Verify(m.SignPublic())
					}
					if err == nil {
						t.Fatalf("byte %d ^ %#x went unnoticed", i, x)
					}
				}
			}
			for l := range len(b) {
				if _, err := ParseCertificate(b[:l]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("truncated to %d: %v", l, err)
				}
			}
			if _, err := ParseCertificate(append(b, 0)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte: %v", err)
			}
			// Another master does not vouch for it.
			other, _ := newMasterKey(newDetReader("other master"), testPoly, fixedTime)
			if err := back.Verify(other.SignPublic()); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verified by another master: %v", err)
			}
		})
	}
	if w.Record().BoxPub != ([32]byte{}) || a.Record().BoxPub != m.AuditBoxKey.Public || mr.BoxPub != m.BoxKey.Public {
		t.Error("records carry the wrong box keys")
	}
	if mr.Certificate.Issuer != m.ID || w.Certificate.Issuer != m.ID || a.Certificate.Issuer != m.ID {
		t.Error("wrong issuer")
	}
}

func TestKeyRecordMustMatchCertificate(t *testing.T) {
	m, w, a := testKeys(t)
	r := w.Record()
	r.Name = "someone else"
	if err := r.Verify(m.SignPublic()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("renamed record: %v", err)
	}
	if _, err := r.MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("renamed record marshalled: %v", err)
	}
	r = a.Record()
	r.BoxPub[0] ^= 1
	if err := r.Verify(m.SignPublic()); err == nil {
		t.Fatal("record with another box key verified")
	}
	r = w.Record()
	r.Certificate.Role = RoleAudit
	if err := r.Verify(m.SignPublic()); err == nil {
		t.Fatal("record with a changed role verified")
	}
	if err := (&KeyRecord{}).Verify(m.SignPublic()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("record without certificate: %v", err)
	}
	// A master self-certificate must certify the given master key.
	mr, _ := m.Record()
	other, _ := newMasterKey(newDetReader("other master"), testPoly, fixedTime)
	or, _ := other.Record()
	if err := or.Verify(m.SignPublic()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another master's self-certificate: %v", err)
	}
	if err := mr.Certificate.Verify(m.SignPublic()); err != nil {
		t.Fatal(err)
	}
}

func TestCertificateFieldChecks(t *testing.T) {
	m, _, _ := testKeys(t)
	for _, name := range []string{"", strings.Repeat("x", MaxNameLen+1), "bad\nname", "tab\tname", "\xff"} {
		if _, err := m.NewWriteKey(name, fixedTime); !errors.Is(err, ErrInvalidName) {
			t.Errorf("write key name %q: %v", name, err)
		}
		if _, err := m.NewAuditKey(name, fixedTime); !errors.Is(err, ErrInvalidName) {
			t.Errorf("audit key name %q: %v", name, err)
		}
	}
	if _, err := m.NewWriteKey(strings.Repeat("é", MaxNameLen/2), fixedTime); err != nil {
		t.Errorf("a %d-byte UTF-8 name: %v", MaxNameLen, err)
	}
	w, err := m.NewWriteKey("ok", time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Created.Nanosecond() != 0 || w.Created.Location() != time.UTC {
		t.Errorf("Created %v not whole seconds in UTC", w.Created)
	}
	if w.ID == m.ID || w.ID.IsZero() {
		t.Error("bad write key ID")
	}
	// Unknown version and kind.
	b, _ := w.Certificate.MarshalBinary()
	b[1] = 2
	if _, err := ParseCertificate(b); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 2: %v", err)
	}
	b[1], b[0] = 1, kindRevocation
	if _, err := ParseCertificate(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("revocation kind: %v", err)
	}
	if _, err := ParseCertificate(make([]byte, MaxCertificateSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized: %v", err)
	}
}

func TestRevocation(t *testing.T) {
	m, w, _ := testKeys(t)
	v, err := m.Revoke(w.ID, "laptop stolen", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(m.SignPublic()); err != nil {
		t.Fatal(err)
	}
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Revocation
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back.KeyID != w.ID || back.Issuer != m.ID || back.Reason != "laptop stolen" || !back.Revoked.Equal(fixedTime) {
		t.Fatalf("round trip: %+v", back)
	}
	if err := back.Verify(m.SignPublic()); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for _, x := range []byte{0x01, 0x80} {
			r, err := ParseRevocation(flip(b, i, x))
			if err == nil {
				err = r.Verify(m.SignPublic())
			}
			if err == nil {
				t.Fatalf("byte %d ^ %#x went unnoticed", i, x)
			}
		}
	}
	for l := range len(b) {
		if _, err := ParseRevocation(b[:l]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", l, err)
		}
	}
	if _, err := m.Revoke(m.ID, "", fixedTime); !errors.Is(err, ErrMalformed) {
		t.Errorf("master revoked itself: %v", err)
	}
	if _, err := m.Revoke(w.ID, strings.Repeat("x", MaxReasonLen+1), fixedTime); !errors.Is(err, ErrMalformed) {
		t.Errorf("long reason: %v", err)
	}
	if _, err := m.Revoke(w.ID, "a\nb", fixedTime); !errors.Is(err, ErrMalformed) {
		t.Errorf("reason with newline: %v", err)
	}
	if v, err := m.Revoke(w.ID, "", fixedTime); err != nil || v.Verify(m.SignPublic()) != nil {
		t.Errorf("empty reason: %v", err)
	}
	// A revocation signature is not a certificate signature.
	body, _ := v.body()
	if err := Verify(m.SignPublic(), ContextCertificate, body, v.Signature); err == nil {
		t.Error("revocation signature verified as a certificate")
	}
}

func TestKeyID(t *testing.T) {
	m, _, _ := testKeys(t)
	s := m.ID.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("ID string %q", s)
	}
	id, err := ParseKeyID(s)
	if err != nil || id != m.ID {
		t.Fatalf("ParseKeyID: %v", err)
	}
	txt, _ := m.ID.MarshalText()
	var back KeyID
	if err := back.UnmarshalText(txt); err != nil || back != m.ID {
		t.Fatalf("text round trip: %v", err)
	}
	for _, bad := range []string{"", s[:31], s + "0", "zz" + s[2:]} {
		if _, err := ParseKeyID(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseKeyID(%q): %v", bad, err)
		}
	}
	if _, err := newKeyID(bytes.NewReader(make([]byte, 16))); err == nil {
		t.Error("a zero key ID was issued")
	}
	for r, want := range map[Role]string{RoleMaster: "master", RoleWrite: "write", RoleAudit: "audit", 0: "role(0)", 9: "role(9)"} {
		if r.String() != want || r.Valid() != (r >= 1 && r <= 3) {
			t.Errorf("Role %d: %q %v", r, r.String(), r.Valid())
		}
	}
}

// TestRevocationNamingLastSnapshot: a version 2 revocation names the last
// snapshot the master accepts; it round-trips, the signature covers the
// new fields (every flipped byte is noticed), and a sequence number
// without an ID (or the reverse) is refused.
func TestRevocationNamingLastSnapshot(t *testing.T) {
	m, w, _ := testKeys(t)
	var last [32]byte
	last[0], last[31] = 0xab, 0xcd
	v, err := m.RevokeAfter(w.ID, "server stolen", fixedTime, 41, last)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[1] != 2 || len(b) > MaxRevocationSize {
		t.Fatalf("version %d, %d bytes", b[1], len(b))
	}
	back, err := ParseRevocation(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.HasLast || back.LastSeq != 41 || back.Last != last || back.KeyID != w.ID || back.Verify(m.SignPublic()) != nil {
		t.Fatalf("round trip: %+v", back)
	}
	for i := range b {
		r, err := ParseRevocation(flip(b, i, 0x01))
		if err == nil {
			err = r.Verify(m.SignPublic())
		}
		if err == nil {
			t.Fatalf("byte %d flipped went unnoticed", i)
		}
	}
	if _, err := m.RevokeAfter(w.ID, "", fixedTime, 3, [32]byte{}); err == nil {
		t.Error("a last sequence number without a snapshot ID was accepted")
	}
	if _, err := m.RevokeAfter(w.ID, "", fixedTime, 0, last); err == nil {
		t.Error("a snapshot ID without a sequence number was accepted")
	}
	none, err := m.RevokeAfter(w.ID, "reject all", fixedTime, 0, [32]byte{})
	if err != nil || !none.HasLast || none.LastSeq != 0 {
		t.Fatalf("a revocation accepting nothing: %+v %v", none, err)
	}
}
