package recompress

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// aheadCount unpacks data with the identifications made ahead and counts
// the members' heads that found a guess and those that did not.
func aheadCount(t *testing.T, name string, data []byte) (rc *Recipe, sink *memSink, hits, misses int) {
	t.Helper()
	testAheadTake = func(hit bool) {
		if hit {
			hits++
		} else {
			misses++
		}
	}
	defer func() { testAheadTake = nil }()
	res, sink := unpackAny(t, name, data)
	return res.Recipe, sink, hits, misses
}

// noAhead unpacks data with the scan turned off.
func noAhead(t *testing.T, name string, data []byte) *Recipe {
	t.Helper()
	testNoAhead = true
	defer func() { testNoAhead = false }()
	res, _ := unpackAny(t, name, data)
	return res.Recipe
}

// sameRecipe fails t unless a and b encode to the same bytes.
func sameRecipe(t *testing.T, what string, a, b *Recipe) {
	t.Helper()
	ea, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Errorf("%s: the recipe differs from the one made without looking ahead", what)
	}
}

// A 2026-style tar (GNU gzip -6 and pg_dump's zlib members) is identified
// ahead: every member's head finds its guess, the recipe is the one the
// walker makes alone, and it restores bit for bit, at one core and two.
func TestAhead2026(t *testing.T) {
	for _, maker := range []string{"zlib", "gzip"} {
		data := datGzTar(t, 40, 10<<10, 400<<10, 7, maker)
		want := noAhead(t, maker, data)
		for _, procs := range []int{1, 2} {
			withProcs(procs, func() {
				rc, sink, hits, misses := aheadCount(t, maker, data)
				if hits != 40 || misses != 0 {
					t.Errorf("%s, GOMAXPROCS %d: %d heads found their guess, %d did not; want 40 and 0",
						maker, procs, hits, misses)
				}
				sameRecipe(t, maker, rc, want)
				recodeAndPack(t, rc, sink, data)
			})
		}
	}
}

// Tars the scan must follow or give up on: pax and GNU headers, long
// names, links, folders, a sparse file, members too big to look ahead at,
// junk that starts like gzip, the same member twice, and a tar inside a
// .tar.gz. Whatever the scan guesses, the recipe is the walker's own and
// the file comes back bit for bit.
func TestAheadOddTars(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	long := filepath.Join(src, strings.Repeat("a-rather-long-folder-name/", 6))
	for _, d := range []string{src, long, filepath.Join(src, "empty")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gz []string
	for i := range 6 {
		p := filepath.Join(src, "t"+string(rune('a'+i))+".dat")
		if i%2 == 1 {
			p = filepath.Join(long, "t"+string(rune('a'+i))+".dat")
		}
		write(p, testSQL(rng, 20<<10+rng.IntN(200<<10)))
		gz = append(gz, p)
	}
	tool(t, src, "gzip", append([]string{"-6"}, gz...)...)
	// The same member twice, and a hard link to it.
	same := mustRead(t, gz[0]+".gz")
	write(filepath.Join(src, "copy.dat.gz"), same)
	if err := os.Link(gz[0]+".gz", filepath.Join(src, "link.dat.gz")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ta.dat.gz", filepath.Join(src, "sym.dat.gz")); err != nil {
		t.Fatal(err)
	}
	// A member bigger than the scan looks at (random bytes: stored).
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	write(filepath.Join(src, "big.bin"), big)
	tool(t, src, "gzip", "-1", "big.bin")
	// Junk with the gzip magic, and an empty file.
	write(filepath.Join(src, "junk.gz"), append([]byte{0x1f, 0x8b, 8, 0}, big[:5000]...))
	write(filepath.Join(src, "nothing"), nil)
	// A sparse file (GNU tar's 'S' members with --sparse).
	sp, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt([]byte("end"), 5<<20); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	for _, format := range []string{"gnu-sparse", "pax", "gnu"} {
		args := []string{"--create", "--sort=name", "--owner=0", "--group=0", "--mtime=2026-01-06",
			"--file=" + filepath.Join(dir, format+".tar")}
		switch format {
		case "gnu-sparse":
			args = append(args, "--format=gnu", "--sparse")
		default:
			args = append(args, "--format="+format)
		}
		tool(t, src, "tar", append(args, ".")...)
		data := mustRead(t, filepath.Join(dir, format+".tar"))
		want := noAhead(t, format, data)
		rc, sink, hits, _ := aheadCount(t, format, data)
		// Six members, the copy and the link's data (GNU tar stores a
		// hard link's data once: the link itself has none).
		if hits < 7 {
			t.Errorf("%s: %d heads found their guess, want at least 7", format, hits)
		}
		sameRecipe(t, format, rc, want)
		recodeAndPack(t, rc, sink, data)
	}
	// The tar inside a .tar.gz: its own walker looks ahead.
	tgz := run(t, mustRead(t, filepath.Join(dir, "pax.tar")), "gzip", "-1", "-c")
	want := noAhead(t, "pax.tar.gz", tgz)
	rc, sink, hits, _ := aheadCount(t, "pax.tar.gz", tgz)
	if hits < 7 {
		t.Errorf("pax.tar.gz: %d heads found their guess, want at least 7", hits)
	}
	sameRecipe(t, "pax.tar.gz", rc, want)
	recodeAndPack(t, rc, sink, tgz)
}

// A guess is used only for the very head and hint it was made for.
func TestAheadTakeChecks(t *testing.T) {
	head := run(t, testSQL(rand.New(rand.NewPCG(1, 1)), 50<<10), "gzip", "-6", "-n", "-c")[10:]
	hint := deflate.Hint{GzipXFL: 0, ZlibLevel: -1, PreferGzip: true}
	a := &ahead{seed: maphash.MakeSeed(), byKey: map[uint64]*guess{}}
	key := a.keyOf(head)
	g := &guess{key: key, hint: hint, prefix: bytes.Clone(head), done: make(chan struct{})}
	g.res, g.err = deflate.Identify(g.prefix, hint)
	close(g.done)
	a.byKey[key] = g
	a.order = append(a.order, g)
	if _, _, ok := a.take(head, hint); !ok {
		t.Fatal("the head the guess was made for did not find it")
	}
	other := bytes.Clone(head)
	other[len(other)/2] ^= 1
	if _, _, ok := a.take(other, hint); ok {
		t.Error("a head one bit different took the guess")
	}
	if _, _, ok := a.take(head[:len(head)-1], hint); ok {
		t.Error("a shorter head took the guess")
	}
	h2 := hint
	h2.PreferGzip = false
	if _, _, ok := a.take(head, h2); ok {
		t.Error("another hint took the guess")
	}
	a.dropBefore(1)
	if _, _, ok := a.take(head, hint); ok || len(a.order) != 0 {
		t.Error("a guess the walker is past was kept")
	}
}

// The check of a member Identify rebuilt whole: the inflater must consume
// exactly the bytes Identify saw and decode the same content; anything
// else makes the member partial from byte 0, its bytes kept.
func TestIdentifiedCheck(t *testing.T) {
	content := testSQL(rand.New(rand.NewPCG(2, 2)), 80<<10)
	stream := run(t, content, "gzip", "-6", "-n", "-c")[10:]
	res, err := deflate.Identify(stream, deflate.NoHint)
	if err != nil || !res.Complete {
		t.Fatalf("identify: %+v, %v", res, err)
	}
	if res.ContentLen != len(content) || res.ContentCRC != crc32.ChecksumIEEE(content) {
		t.Fatalf("identify: content %d bytes, CRC %08x; want %d, %08x",
			res.ContentLen, res.ContentCRC, len(content), crc32.ChecksumIEEE(content))
	}
	deflateLen := res.Verified
	type step struct {
		orig    []byte
		content []byte
	}
	cases := []struct {
		name  string
		steps func() []step
		ok    bool
	}{
		{"as identified", func() []step {
			return []step{{stream[:1000], content[:5000]}, {stream[1000:deflateLen], content[5000:]}}
		}, true},
		{"a byte differs", func() []step {
			b := bytes.Clone(stream[:deflateLen])
			b[2000] ^= 0x40
			return []step{{b[:1000], content}, {b[1000:], nil}}
		}, false},
		{"more bytes", func() []step {
			return []step{{stream[:deflateLen], content}, {[]byte{0}, nil}}
		}, false},
		{"fewer bytes", func() []step { return []step{{stream[:deflateLen-1], content}} }, false},
		{"other content", func() []step {
			c := bytes.Clone(content)
			c[100] ^= 1
			return []step{{stream[:deflateLen], c}}
		}, false},
		{"shorter content", func() []step { return []step{{stream[:deflateLen], content[:len(content)-1]}} }, false},
	}
	for _, tc := range cases {
		k := newIdentified(res, stream)
		var kept []byte // what the layer would store verbatim
		for _, s := range tc.steps() {
			k.feed(s.content)
			if !k.addOrig(s.orig) {
				if rest, ok := k.takeRest(); ok {
					kept = append(kept, rest...)
				}
				kept = append(kept, s.orig...)
			}
		}
		if err := k.finish(false); err != nil {
			t.Fatal(err)
		}
		if rest, ok := k.takeRest(); ok {
			kept = append(kept, rest...)
		}
		if _, ok := k.takeRest(); ok {
			t.Errorf("%s: the rest was handed out twice", tc.name)
		}
		switch {
		case tc.ok && (k.matched() != uint64(deflateLen) || len(kept) != 0):
			t.Errorf("%s: matched %d, %d bytes kept; want %d and none", tc.name, k.matched(), len(kept), deflateLen)
		case !tc.ok && k.matched() != 0:
			t.Errorf("%s: matched %d; want 0", tc.name, k.matched())
		case !tc.ok:
			var all []byte
			for _, s := range tc.steps() {
				all = append(all, s.orig...)
			}
			if !bytes.Equal(kept, all) {
				t.Errorf("%s: kept %d bytes, not the %d the member had", tc.name, len(kept), len(all))
			}
		}
	}
	k := newIdentified(res, stream)
	k.feed(content)
	k.addOrig(stream[:deflateLen])
	if err := k.finish(true); err != nil || k.matched() != 0 {
		t.Errorf("aborted: matched %d, %v; want 0", k.matched(), err)
	}
}

// The workers stop with the walk: after a whole tar, a truncated one and
// a cancelled unpack, no goroutine is left, and the truncated tar is
// still kept exactly.
func TestAheadStops(t *testing.T) {
	data := datGzTar(t, 30, 10<<10, 200<<10, 9, "zlib")
	before := runtime.NumGoroutine()
	unpackMem(t, "whole", data)
	cut := data[:len(data)*2/3+333]
	sink := &memSink{}
	res, err := Unpack(context.Background(), bytes.NewReader(cut), sink, Options{Name: "cut"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) == 0 {
		t.Error("cut tar: no warning")
	}
	recodeAndPack(t, res.Recipe, sink, cut)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(data), n: len(data) / 3, cancel: cancel}
	if _, err := Unpack(ctx, r, &memSink{}, Options{Name: "cancelled"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled unpack: %v", err)
	}
	if n := goroutinesLeft(before); n > 0 {
		t.Errorf("%d goroutines left running", n)
	}
}

// cancelAfter reads r and cancels once n bytes were read.
type cancelAfter struct {
	r      *bytes.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n -= k
	if c.n <= 0 {
		c.cancel()
	}
	return k, err
}
