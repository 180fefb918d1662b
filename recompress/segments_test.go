package recompress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// testSQL makes dump-like text.
func testSQL(rng *rand.Rand, n int) []byte {
	words := strings.Fields("the a of to and in is it that for on with as was at by this be are from " +
		"discourse forum topic reply post user admin like thanks please help error upgrade plugin")
	var b strings.Builder
	for id := 1; b.Len() < n; id++ {
		fmt.Fprintf(&b, "%d\t%d\t", id, rng.IntN(5000))
		for i := 5 + rng.IntN(50); i > 0; i-- {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "\t2026-%02d-%02d %02d:%02d\n", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60))
	}
	return []byte(b.String())[:n]
}

// testImages makes real JPEG and PNG files of noisy pictures.
func testImages(rng *rand.Rand, n int) []byte {
	var out bytes.Buffer
	for i := 0; out.Len() < n; i++ {
		w, h := 100+rng.IntN(400), 100+rng.IntN(400)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := uint8(x*y/5) + uint8(rng.IntN(80))
				img.Set(x, y, color.RGBA{v, uint8(rng.Uint32()), v ^ uint8(x), 255})
			}
		}
		if i%2 == 0 {
			_ = jpeg.Encode(&out, img, &jpeg.Options{Quality: 70 + rng.IntN(25)})
		} else {
			_ = png.Encode(&out, img)
		}
	}
	return out.Bytes()
}

// partsOf counts a recipe's parts: all, stored, restarted.
func partsOf(n Node) (all, stored, restarts int) {
	for g := range gzipNodes(n) {
		for _, m := range g.Members {
			for _, s := range m.Segments {
				all++
				switch s.Kind {
				case SegStored:
					stored++
				case SegStart:
				default:
					restarts++
				}
			}
		}
	}
	return
}

// setWarm sets the warm-up of every restarted part to k.
func setWarm(n Node, k uint8) {
	for g := range gzipNodes(n) {
		for i := range g.Members {
			for j, s := range g.Members[i].Segments {
				if s.Kind != SegStart && s.Kind != SegStored {
					g.Members[i].Segments[j].Kind = k
				}
			}
		}
	}
}

// TestSegmentsRealTools: members made by GNU gzip -1/-5/-9 (over SQL with
// runs of real JPEG/PNG files) and by python3's zlib at -1/-4/-6/-9 (over
// SQL) are cut into proved parts at ingest, and restore, making the parts
// side by side, rebuilds them bit for bit.
func TestSegmentsRealTools(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 14))
	var mixed []byte
	for len(mixed) < 7<<20 {
		mixed = append(mixed, testSQL(rng, 100_000+rng.IntN(600_000))...)
		mixed = append(mixed, testImages(rng, 150_000+rng.IntN(900_000))...)
	}
	sql := testSQL(rng, 7<<20)
	type tc struct {
		name       string
		file       []byte
		wantStored bool
	}
	var cases []tc
	for _, l := range []int{1, 5, 9} {
		cases = append(cases, tc{fmt.Sprintf("gzip-%d", l), run(t, mixed, "gzip", fmt.Sprintf("-%d", l), "-c"), true})
	}
	// gzip --rsyncable (recipe version 4): its block ends where the
	// rolling sum says are parts' ends too.
	for _, l := range []int{1, 6} {
		cases = append(cases, tc{fmt.Sprintf("gzip-%d-rsyncable", l),
			run(t, mixed, "gzip", fmt.Sprintf("-%d", l), "--rsyncable", "-c"), true})
	}
	for _, l := range []int{1, 4, 6, 9} {
		cases = append(cases, tc{fmt.Sprintf("zlib-%d", l), pyGzip(t, sql, l, ""), false})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := &memSink{}
			res, err := Unpack(context.Background(), bytes.NewReader(c.file), sink, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if g, ok := res.Recipe.Root.(*Gzip); !ok || len(g.Members) != 1 ||
				(g.Members[0].Params.Rsync != deflate.RsyncOff) != strings.HasSuffix(c.name, "rsyncable") {
				t.Fatalf("not one member of the engine wanted: %+v", res.Summary.Layers)
			}
			if !res.Summary.Exact {
				t.Errorf("not rebuilt whole by the engine: %+v", res.Summary.Layers)
			}
			all, stored, restarts := partsOf(res.Recipe.Root)
			t.Logf("%d parts: %d stored, %d restarts", all, stored, restarts)
			if all < 3 || restarts == 0 || (c.wantStored && stored == 0) {
				t.Errorf("expected parts with restarts (and stored parts): %d parts, %d stored, %d restarts", all, stored, restarts)
			}
			rc := recodeAndPack(t, res.Recipe, sink, c.file)
			// The longest warm-up reaches back past short parts before
			// it: restore must keep that content. (A longer warm-up than
			// the one proved restarts these streams exactly too.)
			setWarm(rc.Root, uint8(deflate.Warm8))
			var out bytes.Buffer
			if err := Pack(context.Background(), rc, sink.open, &out); err != nil {
				t.Fatalf("with 8-window warm-ups: %v", err)
			}
			if sha256.Sum256(out.Bytes()) != sha256.Sum256(c.file) {
				t.Fatalf("with 8-window warm-ups: rebuilt file differs at byte %d", firstDiff(out.Bytes(), c.file))
			}
		})
	}
}

// A recipe's parts must cover the member and add up; a stored part's
// blocks must hold its bytes and bits.
func TestSegmentsChecked(t *testing.T) {
	p := deflate.GzipParams(1, deflate.RsyncOff)
	mk := func(segs []Segment) error {
		m := Member{Header: make([]byte, 10), Mode: ModeExact, Params: p, ContentLen: 100, Exact: 100, Segments: segs}
		rc := &Recipe{Streams: []Stream{{Kind: KindRaw, Len: 100}},
			Root: &Gzip{Verbatim: -1, Members: []Member{m}, Content: &Copy{Stream: 0, Len: 100}}, Size: 10 + 100 + 8}
		return rc.Validate()
	}
	stored := []deflate.StoredRun{{Len: 50, Count: 1}}
	sbits, _ := storedBits(0, stored)
	cases := []struct {
		name string
		segs []Segment
		ok   bool
	}{
		{"two engine parts", []Segment{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: 1, Content: 40, Bits: 600}}, true},
		{"stored then engine", []Segment{{Kind: SegStored, Content: 50, Bits: sbits, Stored: stored}, {Kind: 1, Content: 50, Bits: 800 - sbits}}, true},
		{"restart first", []Segment{{Kind: 1, Content: 100, Bits: 800}}, false},
		{"start later", []Segment{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: SegStart, Content: 40, Bits: 600}}, false},
		{"unknown warm-up", []Segment{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: 9, Content: 40, Bits: 600}}, false},
		{"short content", []Segment{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: 1, Content: 39, Bits: 600}}, false},
		{"short bits", []Segment{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: 1, Content: 40, Bits: 599}}, false},
		{"stored bits wrong", []Segment{{Kind: SegStored, Content: 50, Bits: sbits + 1, Stored: stored}, {Kind: 1, Content: 50, Bits: 799 - sbits}}, false},
		{"stored bytes wrong", []Segment{{Kind: SegStored, Content: 51, Bits: sbits, Stored: stored}, {Kind: 1, Content: 49, Bits: 800 - sbits}}, false},
	}
	big := Member{Header: make([]byte, 10), Mode: ModeExact, Params: p, ContentLen: MaxPartContent + 1, Exact: 100,
		Segments: []Segment{{Kind: SegStart, Content: MaxPartContent + 1, Bits: 800}}}
	if err := checkSegments(0, &big); err == nil {
		t.Error("a part over MaxPartContent passed")
	}
	for _, c := range cases {
		err := mk(c.segs)
		if (err == nil) != c.ok {
			t.Errorf("%s: got %v", c.name, err)
		}
	}
}

// TestSegmentsUnprovedMerge: on the path of members verified by whole
// engines (several candidates), restarts whose proof fails are merged into
// the part before (a stored run before them becomes engine work), and the
// member still rebuilds exactly.
func TestSegmentsUnprovedMerge(t *testing.T) {
	testFullVerifier = true
	defer func() { testFullVerifier = false }()
	rng := rand.New(rand.NewPCG(7, 14))
	var mixed []byte
	for len(mixed) < 5<<20 {
		mixed = append(mixed, testSQL(rng, 50_000+rng.IntN(400_000))...)
		mixed = append(mixed, testImages(rng, 150_000+rng.IntN(600_000))...)
	}
	file := run(t, mixed, "gzip", "-1", "-c")
	parts := func(refuse func(int64) bool) (int, int, int) {
		testRefuseProof = refuse
		defer func() { testRefuseProof = nil }()
		sink := &memSink{}
		res, err := Unpack(context.Background(), bytes.NewReader(file), sink, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Pack(context.Background(), res.Recipe, sink.open, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), file) {
			t.Fatalf("rebuilt file differs at byte %d", firstDiff(out.Bytes(), file))
		}
		return partsOf(res.Recipe.Root)
	}
	all, stored, restarts := parts(nil)
	n := 0
	someAll, someStored, someRestarts := parts(func(int64) bool { n++; return n%2 == 0 })
	noneAll, _, noneRestarts := parts(func(int64) bool { return true })
	t.Logf("all proved: %d parts (%d stored, %d restarts); every other refused: %d (%d, %d); all refused: %d",
		all, stored, restarts, someAll, someStored, someRestarts, noneAll)
	if someAll >= all || someRestarts >= restarts || someStored > stored {
		t.Errorf("refused proofs did not merge parts: %d/%d/%d, then %d/%d/%d", all, stored, restarts, someAll, someStored, someRestarts)
	}
	// A stored run that ends the member needs no restart after it, so
	// parts may remain; restarts may not.
	if noneRestarts != 0 {
		t.Errorf("with every proof refused the member still has %d restarts", noneRestarts)
	}
}

// A partial member's parts (recipe version 3) cover its exact bytes and
// end inside the byte after them; a version 2 recipe cannot have them.
func TestSegmentsPartialChecked(t *testing.T) {
	p := deflate.GzipParams(1, deflate.RsyncOff)
	mk := func(content uint64, segs []Segment) *Recipe {
		m := Member{Header: make([]byte, 10), Mode: ModePartial, Params: p, ContentLen: content, Exact: 25, Tail: 5, Segments: segs}
		return &Recipe{Streams: []Stream{{Kind: KindRaw, Len: content}, {Kind: KindVerbatim, Len: 5}},
			Root: &Gzip{Verbatim: 1, Members: []Member{m}, Content: &Copy{Stream: 0, Len: content}}, Size: 10 + 25 + 5 + 8}
	}
	cases := []struct {
		name    string
		content uint64
		segs    []Segment
		ok      bool
	}{
		{"ends mid-byte", 100, []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 20, Bits: 81}}, true},
		{"ends on the byte", 100, []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 40, Bits: 80}}, true},
		{"a byte too many", 100, []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 20, Bits: 88}}, false},
		{"short of the exact bytes", 100, []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 20, Bits: 79}}, false},
		{"more content than the member", 70, []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 20, Bits: 81}}, false},
	}
	for _, c := range cases {
		rc := mk(c.content, c.segs)
		err := rc.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: got %v", c.name, err)
		}
		if err != nil {
			continue
		}
		enc, err := rc.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Recipe
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Errorf("%s: version %d does not decode: %v", c.name, enc[4], err)
		}
		enc[4] = 2
		if err := back.UnmarshalBinary(enc); err == nil {
			t.Errorf("%s: a version 2 recipe with parts in a partial member decoded", c.name)
		}
	}
}

// Parts of a gzip --rsyncable member are version 4: a version 3 recipe
// with them is refused, one without them still decodes.
func TestSegmentsRsyncVersion(t *testing.T) {
	for _, parts := range []bool{true, false} {
		m := Member{Header: make([]byte, 10), Mode: ModeExact, Params: deflate.GzipParams(6, deflate.RsyncUpstream),
			ContentLen: 100, Exact: 30}
		if parts {
			m.Segments = []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 1, Content: 40, Bits: 120}}
		}
		rc := &Recipe{Streams: []Stream{{Kind: KindRaw, Len: 100}},
			Root: &Gzip{Verbatim: -1, Members: []Member{m}, Content: &Copy{Stream: 0, Len: 100}}, Size: 10 + 30 + 8}
		enc, err := rc.MarshalBinary()
		if err != nil {
			t.Fatalf("parts %v: %v", parts, err)
		}
		var back Recipe
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Errorf("parts %v: version %d does not decode: %v", parts, enc[4], err)
		}
		enc[4] = 3
		err = back.UnmarshalBinary(enc)
		if parts && (err == nil || !strings.Contains(err.Error(), "rsyncable")) {
			t.Errorf("a version 3 recipe with parts in an --rsyncable member: %v", err)
		}
		if !parts && err != nil {
			t.Errorf("a version 3 recipe with a whole --rsyncable member: %v", err)
		}
	}
}
