package deflate

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// FuzzInflate compares the Inflater with compress/flate on arbitrary
// streams: both fail, or both give the same content; before a failure, the
// shorter output is a prefix of the longer. On success the Inflater took
// the bytes up to its final block's last bit and no more.
func FuzzInflate(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 15))
	sql, random := genSQL(rng, 3000), genRandom(rng, 800)
	mixed := slices.Concat(sql[:1000], random, sql[1000:])
	z := zlibReference(f)
	for _, data := range [][]byte{sql, mixed} {
		for _, l := range []int{1, 6, 9} {
			f.Add(gzipReference(f, l, false, data))
		}
		for _, l := range []int{1, 4, 6, 9} {
			f.Add(z.compress(f, l, 15, 8, DefaultStrategy, 0, data))
		}
		f.Add(z.compress(f, 6, 15, 1, DefaultStrategy, 0, data))
		f.Add(z.compress(f, 6, 15, 8, Fixed, 0, data))
	}
	stored, err := AppendStoredBlocks(nil, 0, []StoredRun{{Len: 300, Count: 2}, {Len: 0, Count: 1}}, random[:600], true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stored)
	f.Add([]byte{0x03, 0x00})
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 8<<10 {
			return // matches of 258 bytes in 1 bit: keep the output small
		}
		got := inflate(src, nil, 4096)
		want, werr := flateAll(src)
		if (got.err == nil) != (werr == nil) {
			t.Fatalf("Inflater: %v; compress/flate: %v", got.err, werr)
		}
		if got.err == nil {
			if !bytes.Equal(got.out, want) {
				t.Fatalf("content differs from compress/flate's at %d", firstDiff(got.out, want))
			}
			last := got.ends[len(got.ends)-1]
			if !last.Final || int((last.Bit+7)/8)+len(got.rest) != len(src) || last.Input != int64(len(want)) {
				t.Fatalf("last block end %+v, %d bytes left of %d", last, len(got.rest), len(src))
			}
			return
		}
		if !errors.Is(got.err, ErrCorrupt) && got.err != io.ErrUnexpectedEOF {
			t.Fatalf("error %v is neither ErrCorrupt nor io.ErrUnexpectedEOF", got.err)
		}
		n := min(len(got.out), len(want))
		if !bytes.Equal(got.out[:n], want[:n]) {
			t.Fatalf("output before the error differs from compress/flate's at %d", firstDiff(got.out[:n], want[:n]))
		}
	})
}

func TestFuzzSeedCorpora(t *testing.T) {
	for _, name := range []string{"FuzzZlibEngine", "FuzzParams", "FuzzIdentify", "FuzzInflate"} {
		ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(ents) == 0 {
			t.Errorf("seed corpus testdata/fuzz/%s is empty or missing: %v", name, err)
		}
	}
}
