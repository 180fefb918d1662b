package deflate

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// long reports whether the full matrix runs (make test-long).
func long() bool { return os.Getenv("LARDER_LONG") != "" }

type zcase struct {
	level, wbits, mem int
	s                 Strategy
}

func (z zcase) params() Params { return ZlibParams(z.level, z.wbits, z.mem, z.s) }

func (z zcase) String() string {
	return fmt.Sprintf("zlib-l%d-w%d-m%d-%v", z.level, z.wbits, z.mem, z.s)
}

// zlibMatrix is the full parameter matrix (long) or its fast subset.
func zlibMatrix(full bool) []zcase {
	var m []zcase
	if full {
		for l := 1; l <= 9; l++ {
			for s := DefaultStrategy; s <= Fixed; s++ {
				for w := 9; w <= 15; w++ {
					for mem := 1; mem <= 9; mem++ {
						m = append(m, zcase{l, w, mem, s})
					}
				}
			}
		}
		return m
	}
	for l := 1; l <= 9; l++ {
		m = append(m, zcase{l, 15, 8, DefaultStrategy})
	}
	for _, s := range []Strategy{Filtered, HuffmanOnly, RLE, Fixed} {
		m = append(m, zcase{6, 15, 8, s}, zcase{2, 12, 4, s})
	}
	for _, l := range []int{1, 4, 6, 9} {
		for _, w := range []int{9, 10, 12, 14} {
			m = append(m, zcase{l, w, 8, DefaultStrategy})
		}
	}
	for _, l := range []int{3, 6} {
		for _, mem := range []int{1, 2, 5, 7, 9} {
			m = append(m, zcase{l, 15, mem, DefaultStrategy})
		}
	}
	m = append(m, zcase{9, 9, 1, DefaultStrategy}, zcase{4, 11, 3, Filtered}, zcase{8, 13, 9, Fixed},
		zcase{7, 9, 9, RLE}, zcase{5, 10, 2, HuffmanOnly})
	return m
}

// TestDifferentialZlib: our zlib engine's output equals the real zlib's,
// byte for byte, for every parameter set and input.
func TestDifferentialZlib(t *testing.T) {
	z := zlibReference(t)
	t.Logf("reference: zlib %s", z.version)
	inputs := corpus(false)
	n := 0
	for _, zc := range zlibMatrix(long()) {
		for _, in := range inputs {
			want := z.compress(t, zc.level, zc.wbits, zc.mem, zc.s, 0, in.data)
			got := ours(t, zc.params(), 0, in.data)
			n++
			if d := firstDiff(got, want); d >= 0 {
				t.Errorf("%v on %s: output differs at byte %d (ours %d bytes, zlib %d)", zc, in.name, d, len(got), len(want))
			}
		}
	}
	t.Logf("%d streams identical", n)
}

// TestDifferentialZlibLong covers the big inputs with a sample of the matrix.
func TestDifferentialZlibLong(t *testing.T) {
	z := zlibReference(t)
	cases := []zcase{{4, 15, 8, DefaultStrategy}, {6, 15, 8, DefaultStrategy}, {1, 15, 8, DefaultStrategy}}
	inputs := []input{{"big-64m", bigInput()}}
	if long() {
		for _, in := range corpus(true) {
			if len(in.data) >= 1<<20 {
				inputs = append(inputs, in)
			}
		}
		for l := 1; l <= 9; l++ {
			cases = append(cases, zcase{l, 12, 5, DefaultStrategy}, zcase{l, 15, 9, Filtered})
		}
		cases = append(cases, zcase{6, 15, 8, HuffmanOnly}, zcase{6, 15, 8, RLE}, zcase{6, 15, 8, Fixed},
			zcase{9, 9, 1, DefaultStrategy})
	}
	for _, zc := range cases {
		for _, in := range inputs {
			want := z.compress(t, zc.level, zc.wbits, zc.mem, zc.s, 0, in.data)
			got := ours(t, zc.params(), 1<<20+7, in.data)
			if d := firstDiff(got, want); d >= 0 {
				t.Errorf("%v on %s: output differs at byte %d (ours %d bytes, zlib %d)", zc, in.name, d, len(got), len(want))
			}
		}
	}
}

// TestSplitInvariance: for levels 1-9 neither zlib's output nor ours
// depends on how the input is cut into writes.
func TestSplitInvariance(t *testing.T) {
	z := zlibReference(t)
	rng := rand.New(rand.NewPCG(5, 5))
	data := genMixed(rng, 700_000)
	for _, zc := range []zcase{{4, 15, 8, DefaultStrategy}, {9, 10, 3, Filtered}, {1, 15, 8, RLE}} {
		want := z.compress(t, zc.level, zc.wbits, zc.mem, zc.s, 0, data)
		for _, step := range []int{1, 7, 262, 4096, 65537} {
			if step == 1 && zc.level != 4 {
				continue
			}
			if got := z.compress(t, zc.level, zc.wbits, zc.mem, zc.s, step, data); !bytes.Equal(got, want) {
				t.Errorf("%v: zlib's own output changes with %d-byte calls", zc, step)
			}
			if got := ours(t, zc.params(), step, data); !bytes.Equal(got, want) {
				t.Errorf("%v: our output changes with %d-byte writes", zc, step)
			}
		}
	}
	g := gzipReference(t, 6, true, data)
	for _, step := range []int{1, 4095, 65536, 65537} {
		if got := ours(t, GzipParams(6, RsyncUpstream), step, data); !bytes.Equal(got, g) {
			t.Errorf("gzip -6 --rsyncable: our output changes with %d-byte writes", step)
		}
	}
}

// TestDifferentialGzip: our GNU gzip engine equals `gzip -N [--rsyncable]`.
func TestDifferentialGzip(t *testing.T) {
	inputs := corpus(long())
	for level := 1; level <= 9; level++ {
		for _, rs := range []bool{false, true} {
			r := RsyncOff
			if rs {
				r = RsyncUpstream
			}
			for _, in := range inputs {
				if !long() && !rs && level%2 == 0 && len(in.data) < 1000 {
					continue // the fast subset skips tiny inputs at even levels
				}
				want := gzipReference(t, level, rs, in.data)
				got := ours(t, GzipParams(level, r), 0, in.data)
				if d := firstDiff(got, want); d >= 0 {
					t.Errorf("gzip -%d rsyncable=%v on %s: differs at byte %d (ours %d, gzip %d)",
						level, rs, in.name, d, len(got), len(want))
				}
			}
		}
	}
}

func TestDifferentialGzipBig(t *testing.T) {
	data := bigInput()
	levels := []int{1, 5, 9}
	if long() {
		levels = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	for _, level := range levels {
		for _, rs := range []bool{false, true} {
			if !long() && rs && level != 1 {
				continue
			}
			r := RsyncOff
			if rs {
				r = RsyncUpstream
			}
			want := gzipReference(t, level, rs, data)
			got := ours(t, GzipParams(level, r), 3<<20+1, data)
			if d := firstDiff(got, want); d >= 0 {
				t.Errorf("gzip -%d rsyncable=%v on 64 MiB: differs at byte %d (ours %d, gzip %d)",
					level, rs, d, len(got), len(want))
			}
		}
	}
}

// TestIdentifyMatrix: Identify finds parameters that reproduce every
// stream of the matrix exactly.
func TestIdentifyMatrix(t *testing.T) {
	z := zlibReference(t)
	inputs := corpus(false)
	wrong := 0
	for _, zc := range zlibMatrix(long()) {
		for _, in := range inputs {
			if len(in.data) < 1000 && !long() {
				continue
			}
			src := z.compress(t, zc.level, zc.wbits, zc.mem, zc.s, 0, in.data)
			res, err := Identify(src, NoHint)
			if err != nil {
				t.Errorf("%v on %s: %v", zc, in.name, err)
				continue
			}
			if got := ours(t, res.Params, 0, in.data); !bytes.Equal(got, src) || !res.Complete {
				wrong++
				t.Errorf("%v on %s: identified %v, which does not reproduce it", zc, in.name, res.Params)
			}
		}
	}
	for level := 1; level <= 9; level++ {
		for _, in := range inputs {
			if len(in.data) < 1000 {
				continue
			}
			src := gzipReference(t, level, level%3 == 0, in.data)
			res, err := Identify(src, Hint{GzipXFL: -1, ZlibLevel: -1, PreferGzip: true})
			if err != nil {
				t.Errorf("gzip -%d on %s: %v", level, in.name, err)
				continue
			}
			if got := ours(t, res.Params, 0, in.data); !bytes.Equal(got, src) {
				wrong++
				t.Errorf("gzip -%d on %s: identified %v, which does not reproduce it", level, in.name, res.Params)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d wrong identifications", wrong)
	}
}

// TestIdentifyPrefix: on a 64 MiB stream, Identify looks at the first MiB
// only, and the parameters it names reproduce the whole stream.
func TestIdentifyPrefix(t *testing.T) {
	z := zlibReference(t)
	data := bigInput()
	check := func(name string, src []byte, hint Hint, want Params) {
		res, err := Identify(src[:IdentifyPrefix], hint)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Complete {
			t.Errorf("%s: a prefix was reported complete", name)
		}
		if res.Params.String() != want.String() {
			t.Logf("%s: identified %v (made with %v)", name, res.Params, want)
		}
		if got := ours(t, res.Params, 1<<20, data); !bytes.Equal(got, src) {
			t.Errorf("%s: identified %v from the prefix, which does not reproduce the stream", name, res.Params)
		}
	}
	check("pg_dump zlib -4", z.compress(t, 4, 15, 8, DefaultStrategy, 0, data), Hint{GzipXFL: 0, ZlibLevel: -1}, ZlibParams(4, 15, 8, DefaultStrategy))
	check("gzip -1", gzipReference(t, 1, false, data), Hint{GzipXFL: 4, ZlibLevel: -1, PreferGzip: true}, GzipParams(1, RsyncOff))
	check("gzip -5", gzipReference(t, 5, false, data), Hint{GzipXFL: 0, ZlibLevel: -1, PreferGzip: true}, GzipParams(5, RsyncOff))
}

// TestStoredLevel0: level-0 streams (whose block sizes depend on zlib's
// version and call sizes) are identified as stored block lists.
func TestStoredLevel0(t *testing.T) {
	z := zlibReference(t)
	rng := rand.New(rand.NewPCG(9, 9))
	data := genMixed(rng, 500_000)
	for _, step := range []int{0, 1000, 70000} {
		for _, in := range [][]byte{nil, data[:10], data} {
			src := z.compress(t, 0, 15, 8, DefaultStrategy, step, in)
			res, err := Identify(src, NoHint)
			if err != nil {
				t.Fatalf("level 0, %d bytes in %d-byte calls: %v", len(in), step, err)
			}
			if res.Params.Engine != Stored {
				t.Errorf("level 0 identified as %v", res.Params)
			}
			if got := ours(t, res.Params, 999, in); !bytes.Equal(got, src) {
				t.Errorf("level 0, %d bytes in %d-byte calls: %v does not reproduce", len(in), step, res.Params)
			}
		}
	}
}

// TestNoEngine: streams from other encoders are either reported as "no
// engine" or identified with parameters that reproduce them exactly.
func TestNoEngine(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	data := genMixed(rng, 3<<20)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	type maker struct {
		name string
		raw  func() ([]byte, error)
	}
	gz := func(args ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			out, err := exec.Command(args[0], args[1:]...).Output()
			if err != nil {
				return nil, fmt.Errorf("%v: %w", args, err)
			}
			return gzipPayload(out)
		}
	}
	makers := []maker{
		{"pigz -6", gz("pigz", "-6", "-c", "-n", in)},
		{"pigz -1", gz("pigz", "-1", "-c", "-n", in)},
		{"pigz -9", gz("pigz", "-9", "-c", "-n", in)},
	}
	for _, l := range []int{1, 5, 9, -2} {
		l := l
		makers = append(makers, maker{fmt.Sprintf("go compress/flate %d", l), func() ([]byte, error) {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, l)
			w.Write(data)
			w.Close()
			return b.Bytes(), nil
		}})
	}
	if _, err := exec.LookPath("zopfli"); err == nil {
		makers = append(makers, maker{"zopfli", func() ([]byte, error) {
			small := filepath.Join(dir, "small")
			os.WriteFile(small, data[:200_000], 0o600)
			if err := exec.Command("zopfli", "--i1", small).Run(); err != nil {
				return nil, err
			}
			out, err := os.ReadFile(small + ".gz")
			if err != nil {
				return nil, err
			}
			return gzipPayload(out)
		}})
	} else if os.Getenv("CI") != "" {
		t.Error("zopfli is not installed; .ci/run installs it")
	}
	if _, err := exec.LookPath("7z"); err == nil {
		makers = append(makers, maker{"7z -tgzip", func() ([]byte, error) {
			out := filepath.Join(dir, "7z.gz")
			os.Remove(out)
			if err := exec.Command("7z", "a", "-tgzip", "-mx=9", out, in).Run(); err != nil {
				return nil, err
			}
			b, err := os.ReadFile(out)
			if err != nil {
				return nil, err
			}
			return gzipPayload(b)
		}})
	} else if os.Getenv("CI") != "" {
		t.Error("7z is not installed; .ci/run installs p7zip-full")
	}
	for _, m := range makers {
		src, err := m.raw()
		if err != nil {
			t.Fatalf("%s: %v (install it: .ci/run does)", m.name, err)
		}
		var orig []byte
		if r := flate.NewReader(bytes.NewReader(src)); r != nil {
			var b bytes.Buffer
			if _, err := b.ReadFrom(r); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			orig = b.Bytes()
		}
		for _, whole := range []bool{true, false} {
			head := src
			if !whole && len(head) > IdentifyPrefix {
				head = head[:IdentifyPrefix]
			}
			res, err := Identify(head, NoHint)
			if err == ErrNoEngine {
				t.Logf("%s (whole=%v): no engine", m.name, whole)
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", m.name, err)
				continue
			}
			got := ours(t, res.Params, 0, orig)
			if whole && !bytes.Equal(got, src) {
				t.Errorf("%s: wrongly identified as %v", m.name, res.Params)
			}
			if !whole && !bytes.HasPrefix(src, got[:min(len(got), res.Verified)]) {
				t.Errorf("%s: prefix wrongly identified as %v", m.name, res.Params)
			}
			t.Logf("%s (whole=%v): %v reproduces %d of %d bytes", m.name, whole, res.Params, res.Verified, len(src))
		}
	}
}

// gzipPayload returns the raw deflate stream of a one-member gzip file.
func gzipPayload(b []byte) ([]byte, error) {
	if len(b) < 18 || b[0] != 0x1f || b[1] != 0x8b {
		return nil, fmt.Errorf("not a gzip file")
	}
	flg := b[3]
	p := 10
	if flg&4 != 0 {
		p += 2 + int(b[p]) | int(b[p+1])<<8
	}
	for _, f := range []byte{8, 16} {
		if flg&f != 0 {
			for b[p] != 0 {
				p++
			}
			p++
		}
	}
	if flg&2 != 0 {
		p += 2
	}
	return b[p : len(b)-8], nil
}
