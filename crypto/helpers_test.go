package crypto

import (
	"crypto/sha256"
	"flag"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"
)

var update = flag.Bool("update", false, "rewrite the golden files and fuzz seed corpora under testdata")

func TestMain(m *testing.M) {
	TestOnlyFastKDF()
	os.Exit(m.Run())
}

// sizes are the round-trip lengths of STYLE rule 7: empty, tiny, around
// the 16-byte Poly1305 block, around a 4 KiB page, and large and odd.
var sizes = []int{0, 1, 15, 16, 17, 4095, 4096, 4097, 1<<20 + 3}

// detReader is a deterministic "random" source for test vectors: the
// ChaCha20 keystream under SHA-256(label). It must never change, or the
// golden files change with it.
type detReader struct{ c *chacha20.Cipher }

func newDetReader(label string) *detReader {
	key := sha256.Sum256([]byte(label))
	c, err := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err)
	}
	return &detReader{c: c}
}

func (r *detReader) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

// pattern returns n bytes that differ at every offset in a non-periodic
// way, so misplaced bytes are caught.
func pattern(n int) []byte {
	b := make([]byte, n)
	r := newDetReader("pattern")
	r.Read(b)
	return b
}

// fixedTime is the creation time used in test vectors.
var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testPoly is a chunker polynomial (any non-zero value will do here; the
// chunker package checks irreducibility).
const testPoly = 0x3DA3358B4DC173

// testKeys makes a deterministic master key with one write and one audit
// key.
func testKeys(t testing.TB) (*MasterKey, *WriteKey, *AuditKey) {
	t.Helper()
	r := newDetReader("test keys")
	m, err := newMasterKey(r, testPoly, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	w, err := m.newWriteKey(r, "forum.example.org nightly", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.newAuditKey(r, "auditor", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	return m, w, a
}

// flip returns a copy of b with byte i XORed with x.
func flip(b []byte, i int, x byte) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= x
	return c
}
