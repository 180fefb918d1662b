package deflate

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzZlibEngine compares the zlib engine with the real zlib (python3's
// zlib module) on arbitrary input and parameters.
func FuzzZlibEngine(f *testing.F) {
	f.Add([]byte("hello hello hello forum forum"), uint8(6), uint8(15), uint8(8), uint8(0))
	f.Add(bytes.Repeat([]byte{0}, 1000), uint8(1), uint8(9), uint8(1), uint8(3))
	f.Add([]byte("abcabcabcabd"), uint8(9), uint8(10), uint8(9), uint8(1))
	z := zlibReference(f)
	f.Fuzz(func(t *testing.T, data []byte, level, wbits, mem, strategy uint8) {
		l := 1 + int(level)%9
		w := 9 + int(wbits)%7
		m := 1 + int(mem)%9
		s := Strategy(strategy % 5)
		want := z.compress(t, l, w, m, s, 0, data)
		got := ours(t, ZlibParams(l, w, m, s), 0, data)
		if d := firstDiff(got, want); d >= 0 {
			t.Fatalf("zlib -%d wbits=%d mem=%d %v: differs at byte %d", l, w, m, s, d)
		}
	})
}

// FuzzParams: a decodable parameter record re-encodes to the same bytes.
func FuzzParams(f *testing.F) {
	for _, p := range []Params{ZlibParams(4, 15, 8, DefaultStrategy), GzipParams(1, RsyncUpstream),
		{Engine: Stored, Runs: []StoredRun{{Len: 65535, Count: 3}, {Len: 7, Count: 1}}}} {
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Params
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded params do not encode: %v", err)
		}
		var q Params
		if err := q.UnmarshalBinary(enc); err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("params changed through encode and decode: %v", err)
		}
	})
}

// FuzzIdentify: on any bytes Identify either fails or names parameters;
// when it says the whole stream was rebuilt, it was.
func FuzzIdentify(f *testing.F) {
	f.Add([]byte{3, 0})
	f.Add([]byte{0x4b, 0x4c, 0x4a, 0x06, 0x00})
	f.Add([]byte{1, 3, 0, 0xfc, 0xff, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := Identify(src, NoHint)
		if err != nil || !res.Complete {
			return
		}
		pr := parseStream(src, MaxIdentifyOut)
		got := ours(t, res.Params, 0, pr.out)
		if !bytes.HasPrefix(src, got) || len(got) != res.Verified {
			t.Fatalf("%v was said to rebuild the stream but does not", res.Params)
		}
	})
}

func TestFuzzSeedCorpora(t *testing.T) {
	for _, name := range []string{"FuzzZlibEngine", "FuzzParams", "FuzzIdentify"} {
		ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(ents) == 0 {
			t.Errorf("seed corpus testdata/fuzz/%s is empty or missing: %v", name, err)
		}
	}
}
