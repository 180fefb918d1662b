package deflate

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestIdentifyZlibWhole(t *testing.T) {
	z := zlibReference(t)
	rng := rand.New(rand.NewPCG(3, 4))
	text := genSQL(rng, 200000)
	for _, tc := range []struct {
		level, wbits, mem int
		s                 Strategy
	}{
		{4, 15, 8, DefaultStrategy}, {6, 15, 8, DefaultStrategy}, {9, 15, 8, DefaultStrategy},
		{1, 15, 8, DefaultStrategy}, {5, 12, 3, Filtered}, {3, 9, 1, DefaultStrategy},
		{6, 15, 9, DefaultStrategy}, {6, 15, 8, HuffmanOnly}, {6, 15, 8, RLE}, {6, 15, 8, Fixed},
	} {
		src := z.compress(t, tc.level, tc.wbits, tc.mem, tc.s, 0, text)
		res, err := Identify(src, NoHint)
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
			continue
		}
		if !res.Complete {
			t.Errorf("%+v: not complete", tc)
		}
		got := ours(t, res.Params, 0, text)
		if !bytes.Equal(got, src) {
			t.Errorf("%+v: identified %v does not reproduce", tc, res.Params)
		}
		t.Logf("%+v → %v (%d survivors)", tc, res.Params, res.Survivors)
	}
}

func TestIdentifyGzipWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	text := genSQL(rng, 200000)
	for level := 1; level <= 9; level++ {
		for _, rs := range []bool{false, true} {
			src := gzipReference(t, level, rs, text)
			res, err := Identify(src, Hint{GzipXFL: -1, ZlibLevel: -1, PreferGzip: true})
			if err != nil {
				t.Errorf("gzip -%d rsync=%v: %v", level, rs, err)
				continue
			}
			got := ours(t, res.Params, 0, text)
			if !bytes.Equal(got, src) {
				t.Errorf("gzip -%d: identified %v does not reproduce", level, res.Params)
			}
			t.Logf("gzip -%d rsync=%v → %v (%d survivors)", level, rs, res.Params, res.Survivors)
		}
	}
}

func TestVerify(t *testing.T) {
	z := zlibReference(t)
	rng := rand.New(rand.NewPCG(8, 8))
	text := genSQL(rng, 300000)
	src := z.compress(t, 4, 15, 8, DefaultStrategy, 0, text)
	n, exact, err := Verify(ZlibParams(4, 15, 8, DefaultStrategy), bytes.NewReader(text), bytes.NewReader(src))
	if err != nil || !exact || n != int64(len(src)) {
		t.Fatalf("right parameters: matched %d of %d, exact %v, %v", n, len(src), exact, err)
	}
	n, exact, err = Verify(ZlibParams(5, 15, 8, DefaultStrategy), bytes.NewReader(text), bytes.NewReader(src))
	if err != nil || exact || n >= int64(len(src)) {
		t.Fatalf("wrong parameters: matched %d of %d, exact %v, %v", n, len(src), exact, err)
	}
	// A longer original (trailing bytes) is not exact.
	_, exact, _ = Verify(ZlibParams(4, 15, 8, DefaultStrategy), bytes.NewReader(text), bytes.NewReader(append(bytes.Clone(src), 0)))
	if exact {
		t.Fatal("an original with a trailing byte was reported exact")
	}
}
