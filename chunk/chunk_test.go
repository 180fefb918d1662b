package chunk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/restic/chunker"
)

// testPol is a fixed irreducible polynomial for the test vectors.
const testPol = chunker.Pol(0x3DA3358B4DC173)

func testData(n int) []byte {
	rng := rand.New(rand.NewPCG(23, 23))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func chunks(t *testing.T, r io.Reader, p Params) [][]byte {
	t.Helper()
	c := New(r, p)
	var out [][]byte
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// TestVectors pins the chunk boundaries of both classes: they are a
// contract (stored data deduplicates only if they never change).
func TestVectors(t *testing.T) {
	if !testPol.Irreducible() {
		t.Fatal("test polynomial is not irreducible")
	}
	data := testData(2 << 20)
	for _, tc := range []struct {
		name     string
		p        Params
		chunks   int
		digest   string
		min, max int
	}{
		{"text", TextParams(testPol), 807, "c43c226e86f327955b5f919c522d02295e6af63f19b7e27879f5cf74bb61311e", 512, 16 << 10},
		{"bulk", BulkParams(testPol), 25, "d4ea0f2044367af911e5ab4400fa98e071ac3a3cf2b9eb2f736faf9561133270", 16 << 10, 512 << 10},
	} {
		got := chunks(t, bytes.NewReader(data), tc.p)
		h := sha256.New()
		total := 0
		for _, c := range got {
			total += len(c)
			sum := sha256.Sum256(c)
			h.Write(sum[:])
		}
		if total != len(data) {
			t.Fatalf("%s: chunks hold %d bytes, not %d", tc.name, total, len(data))
		}
		if digest := hex.EncodeToString(h.Sum(nil)); len(got) != tc.chunks || digest != tc.digest {
			t.Errorf("%s: %d chunks, digest %s; the pinned vector is %d chunks, %s", tc.name, len(got), digest, tc.chunks, tc.digest)
		}
		for i, c := range got[:len(got)-1] {
			if len(c) < tc.min || len(c) > tc.max {
				t.Errorf("%s: chunk %d has %d bytes, outside %d..%d", tc.name, i, len(c), tc.min, tc.max)
			}
		}
	}
}

// TestStability: the chunks do not depend on how the reader delivers the
// data, nor on a Chunker's earlier use.
func TestStability(t *testing.T) {
	data := testData(700_000)
	p := TextParams(testPol)
	whole := chunks(t, bytes.NewReader(data), p)
	for name, r := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)),
		"half reads":         iotest.HalfReader(bytes.NewReader(data)),
		"data errors":        iotest.DataErrReader(bytes.NewReader(data)),
	} {
		got := chunks(t, r, p)
		if len(got) != len(whole) {
			t.Fatalf("%s: %d chunks, not %d", name, len(got), len(whole))
		}
		for i := range got {
			if !bytes.Equal(got[i], whole[i]) {
				t.Fatalf("%s: chunk %d differs", name, i)
			}
		}
	}
	// Reuse through Reset.
	c := New(bytes.NewReader(testData(100_000)), p)
	for {
		if _, err := c.Next(); err != nil {
			break
		}
	}
	c.Reset(bytes.NewReader(data), p)
	for i := 0; ; i++ {
		b, err := c.Next()
		if err == io.EOF {
			if i != len(whole) {
				t.Fatalf("after Reset: %d chunks, not %d", i, len(whole))
			}
			break
		}
		if !bytes.Equal(b, whole[i]) {
			t.Fatalf("after Reset: chunk %d differs", i)
		}
	}
}

// TestShiftResistance: inserting bytes near the start changes only the
// chunks around the insertion.
func TestShiftResistance(t *testing.T) {
	data := testData(1 << 20)
	p := TextParams(testPol)
	a := chunks(t, bytes.NewReader(data), p)
	ins := append(append(bytes.Clone(data[:5000]), []byte("a new forum post")...), data[5000:]...)
	b := chunks(t, bytes.NewReader(ins), p)
	seen := map[[32]byte]bool{}
	for _, c := range a {
		seen[sha256.Sum256(c)] = true
	}
	shared := 0
	for _, c := range b {
		if seen[sha256.Sum256(c)] {
			shared++
		}
	}
	if shared < len(a)-3 {
		t.Errorf("only %d of %d chunks survive a 16-byte insertion", shared, len(a))
	}
}

func TestValidate(t *testing.T) {
	good := TextParams(testPol)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Params{
		"reducible polynomial": {Pol: 0x3, Min: 1 << 12, Max: 1 << 16, AvgBits: 14},
		"min over max":         {Pol: testPol, Min: 1 << 17, Max: 1 << 16, AvgBits: 14},
		"max too big":          {Pol: testPol, Min: 1 << 12, Max: 1 << 24, AvgBits: 14},
		"average too small":    {Pol: testPol, Min: 1 << 12, Max: 1 << 16, AvgBits: 4},
	} {
		if err := p.Validate(); !errors.Is(err, ErrParams) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

func TestEmptyStream(t *testing.T) {
	if got := chunks(t, bytes.NewReader(nil), TextParams(testPol)); len(got) != 0 {
		t.Fatalf("empty stream gave %d chunks", len(got))
	}
}
