package recompress

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// ingestMixed is GNU gzip -1 of dump-like text with runs of real JPEG and
// PNG files (stored blocks), about 5 MiB.
func ingestMixed(t *testing.T) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(9, 14))
	var mixed []byte
	for len(mixed) < 5<<20 {
		mixed = append(mixed, testSQL(rng, 50_000+rng.IntN(400_000))...)
		mixed = append(mixed, testImages(rng, 150_000+rng.IntN(600_000))...)
	}
	return run(t, mixed, "gzip", "-1", "-c")
}

// unpackRefusing unpacks file with refuse deciding which parts fail their
// verification, checks that it packs back bit for bit (through the
// encoded recipe), and returns its only member.
func unpackRefusing(t *testing.T, file []byte, refuse func(start uint64, merged bool) bool) (Member, *Result, *memSink) {
	t.Helper()
	testRefusePart = refuse
	defer func() { testRefusePart = nil }()
	sink := &memSink{}
	res, err := Unpack(context.Background(), bytes.NewReader(file), sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rc := recodeAndPack(t, res.Recipe, sink, file)
	g, ok := rc.Root.(*Gzip)
	if !ok || len(g.Members) != 1 {
		t.Fatalf("root %T, want one gzip member", rc.Root)
	}
	return g.Members[0], res, sink
}

// TestIngestPartsFallback: at ingest every part is verified by making it
// as restore will. A part that no warm-up rebuilds falls back to the
// engine of the part before (the two verified again as one); when that
// fails too, or the first part fails, the member is partial from there:
// its verified parts stay (recipe version 3) and the rest is verbatim.
// Each way, the file rebuilds bit for bit.
func TestIngestPartsFallback(t *testing.T) {
	file := ingestMixed(t)
	heads := headVerified.Load()
	m, _, _ := unpackRefusing(t, file, nil)
	if headVerified.Load() == heads {
		t.Error("the first part was not passed by the verifier that runs while the member is read")
	}
	all, stored, restarts := partsOf(&Gzip{Members: []Member{m}})
	t.Logf("all verified: %d parts, %d stored, %d restarts", all, stored, restarts)
	if m.Mode != ModeExact || restarts < 2 || stored == 0 {
		t.Fatalf("mode %d, %d parts (%d stored, %d restarts): want an exact member in parts of both kinds", m.Mode, all, stored, restarts)
	}

	// Every other restart refused: merged into the part before (a
	// restart after a stored part then restarts where that one started).
	refused := map[uint64]bool{}
	var off uint64
	for i, s := range m.Segments {
		if s.Kind != SegStart && s.Kind != SegStored && i%2 == 0 {
			refused[off] = true
		}
		off += s.Content
	}
	if len(refused) < 2 {
		t.Fatalf("only %d restarts to refuse", len(refused))
	}
	m2, _, _ := unpackRefusing(t, file, func(start uint64, merged bool) bool { return !merged && refused[start] })
	all2, _, restarts2 := partsOf(&Gzip{Members: []Member{m2}})
	if m2.Mode != ModeExact || all2 != all-len(refused) || restarts2 > restarts {
		t.Errorf("%d refused restarts did not merge: mode %d, %d parts (%d restarts), before %d (%d)",
			len(refused), m2.Mode, all2, restarts2, all, restarts)
	}

	// One part refused, and its fallback too: partial from its start.
	var cut uint64
	var c uint64
	for i, s := range m.Segments {
		if i == len(m.Segments)/2 {
			cut = c
		}
		c += s.Content
	}
	m3, res, sink := unpackRefusing(t, file, func(start uint64, merged bool) bool { return start == cut || merged && start < cut })
	var covered uint64
	for _, s := range m3.Segments {
		covered += s.Content
	}
	if m3.Mode != ModePartial || covered != cut || m3.Tail == 0 || m3.Exact == 0 {
		t.Errorf("a refused part and fallback: mode %d, parts cover %d content bytes (want %d), exact %d, tail %d",
			m3.Mode, covered, cut, m3.Exact, m3.Tail)
	}
	if l := res.Summary.Layers; len(l) == 0 || l[0].Mode != "partial" {
		t.Errorf("summary %+v: want the member reported partial", l)
	}

	// A writer's recipe is a claim: a byte of bits moved from the last
	// engine part to the first (their sum, the stored parts' alignment,
	// so the recipe's checks, unchanged) makes no exact file, and Pack
	// returns rather than hanging or panicking.
	forged := res.Recipe
	fm := &forged.Root.(*Gzip).Members[0]
	last := len(fm.Segments) - 1
	for last > 0 && fm.Segments[last].Kind == SegStored {
		last--
	}
	if last == 0 || fm.Segments[0].Kind == SegStored {
		t.Fatalf("the partial member lacks two engine parts: %+v", fm.Segments)
	}
	fm.Segments[0].Bits += 8
	fm.Segments[last].Bits -= 8
	if err := forged.Validate(); err != nil {
		t.Fatalf("the forged recipe does not even validate: %v", err)
	}
	var out bytes.Buffer
	if err := Pack(context.Background(), forged, sink.open, &out); err == nil && bytes.Equal(out.Bytes(), file) {
		t.Error("parts with a byte of bits moved still rebuilt the file")
	}

	// The first part refused: nothing is rebuilt by an engine.
	m4, _, _ := unpackRefusing(t, file, func(start uint64, merged bool) bool { return start == 0 })
	if m4.Mode != ModePartial || m4.Exact != 0 || len(m4.Segments) != 0 {
		t.Errorf("first part refused: mode %d, exact %d, %d parts; want partial from byte 0", m4.Mode, m4.Exact, len(m4.Segments))
	}
}

// TestIngestPartsDamaged: a member cut short keeps the parts verified
// before the damage, and the rest verbatim; it rebuilds bit for bit.
func TestIngestPartsDamaged(t *testing.T) {
	file := ingestMixed(t)
	before := runtime.NumGoroutine()
	for _, frac := range []int{3, 2} {
		cut := file[:len(file)*(frac-1)/frac+777]
		m, res, _ := unpackRefusing(t, cut, nil)
		if len(res.Warnings) == 0 {
			t.Errorf("cut at %d: no warning", len(cut))
		}
		if m.Mode != ModePartial || len(m.Segments) < 2 || m.Exact == 0 || m.Tail == 0 {
			t.Errorf("cut at %d: mode %d, %d parts, exact %d, tail %d; want partial with its verified parts",
				len(cut), m.Mode, len(m.Segments), m.Exact, m.Tail)
		}
	}
	// Cut inside the first part (hex text: 2 MiB of content, the first
	// part, take more than Identify's 1 MiB prefix): nothing verified,
	// and the verifier that reads along is stopped.
	rng := rand.New(rand.NewPCG(3, 3))
	hex := make([]byte, 4<<20)
	for i := range hex {
		hex[i] = "0123456789abcdef"[rng.IntN(16)]
	}
	m, _, _ := unpackRefusing(t, run(t, hex, "gzip", "-1", "-c")[:deflate.IdentifyPrefix+100_000], nil)
	if m.Mode != ModePartial || m.Exact != 0 || len(m.Segments) != 0 {
		t.Errorf("cut in the first part: mode %d, exact %d, %d parts", m.Mode, m.Exact, len(m.Segments))
	}
	if n := goroutinesLeft(before); n > 0 {
		t.Errorf("%d goroutines left running after the damaged members", n)
	}
}

// The history's blocks give back exactly the bytes written, across block
// boundaries, after drops of any length (to its end too).
func TestHistory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h history
	var ref []byte // the whole stream
	for step := 0; step < 3000; step++ {
		switch rng.IntN(4) {
		case 0, 1:
			p := make([]byte, rng.IntN(300_000))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			h.write(p)
			ref = append(ref, p...)
		case 2:
			h.drop(h.from + uint64(rng.Int64N(int64(h.len()+1))))
		case 3:
			if rng.IntN(10) == 0 {
				h.drop(h.end)
			}
		}
		if h.end != uint64(len(ref)) {
			t.Fatalf("step %d: end %d, wrote %d", step, h.end, len(ref))
		}
		if h.len() > 0 {
			a := h.from + uint64(rng.Int64N(int64(h.len())))
			b := a + uint64(rng.Int64N(int64(h.end-a+1)))
			v := h.view(a, b)
			if got := v.appendTo(nil); !bytes.Equal(got, ref[a:b]) {
				t.Fatalf("step %d: [%d, %d) differs", step, a, b)
			}
			if b > a {
				i := rng.IntN(int(b - a))
				if v.at(i) != ref[a+uint64(i)] || !v.equal(i, ref[a+uint64(i):b]) || (b-a > 1 && v.equal(0, ref[a+1:b])) && !bytes.Equal(ref[a+1:b], ref[a:b-1]) {
					t.Fatalf("step %d: at/equal wrong in [%d, %d)", step, a, b)
				}
				var joined []byte
				for p, off := range v.pieces(a + uint64(i)) {
					if off != a+uint64(i)+uint64(len(joined)) {
						t.Fatalf("step %d: piece at %d, want %d", step, off, a+uint64(i)+uint64(len(joined)))
					}
					joined = append(joined, p...)
				}
				if !bytes.Equal(joined, ref[a+uint64(i):b]) {
					t.Fatalf("step %d: pieces differ", step)
				}
			}
		}
		if len(h.blocks) > int(h.len()/histBlock)+2 {
			t.Fatalf("step %d: %d blocks held for %d bytes", step, len(h.blocks), h.len())
		}
	}
}

// TestIngestPartsHistoryBound: a member whose history would outgrow its
// bound (blocks longer than any engine makes, here a bound lowered below
// a part) is partial from the end of its verified parts, and still
// rebuilds bit for bit.
func TestIngestPartsHistoryBound(t *testing.T) {
	file := ingestMixed(t)
	saved := maxHistory
	maxHistory = 1 << 20
	defer func() { maxHistory = saved }()
	m, _, _ := unpackRefusing(t, file, nil)
	if m.Mode != ModePartial || m.Tail == 0 {
		t.Errorf("mode %d, exact %d, tail %d: want a partial member", m.Mode, m.Exact, m.Tail)
	}
}
