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
