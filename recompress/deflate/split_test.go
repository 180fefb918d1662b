package deflate

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"
)

// genImages makes real JPEG and PNG files (Go's encoders over noisy
// pictures): the incompressible uploads of a forum backup.
func genImages(rng *rand.Rand, n int) []byte {
	var out bytes.Buffer
	for i := 0; out.Len() < n; i++ {
		w, h := 64+rng.IntN(300), 64+rng.IntN(300)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := uint8(x*y/7) + uint8(rng.IntN(64))
				img.Set(x, y, color.RGBA{v, uint8(rng.Uint32()), v ^ uint8(y), 255})
			}
		}
		if i%2 == 0 {
			_ = jpeg.Encode(&out, img, &jpeg.Options{Quality: 60 + rng.IntN(35)})
		} else {
			_ = png.Encode(&out, img)
		}
	}
	return out.Bytes()
}

// genTarLike interleaves SQL text and real images, as the tar of a classic
// backup holds a dump and uploads: runs of stored blocks between
// compressed ones.
func genTarLike(rng *rand.Rand, n int) []byte {
	var b []byte
	for len(b) < n {
		b = append(b, genSQL(rng, 2000+rng.IntN(60000))...)
		b = append(b, genImages(rng, 20000+rng.IntN(300000))...)
	}
	return b[:n]
}

// blockEndsOf runs our engine over data and returns its block ends and
// output.
func blockEndsOf(t *testing.T, p Params, data []byte) ([]BlockEnd, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	var ends []BlockEnd
	w.OnBlockEnd(func(e BlockEnd) { ends = append(ends, e) })
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return ends, buf.Bytes()
}

// runSplit makes the part of the stream between cut and stop (a block
// end, or nil for the stream's end) with a restarted engine.
func runSplit(t *testing.T, p Params, data []byte, cut BlockEnd, stop *BlockEnd, k Warm) ([]byte, error) {
	return runSplitFrom(t, p, data, cut, stop, WarmStart(p, cut.Input, k))
}

// runSplitFrom is runSplit with the warm-up starting at input offset from.
func runSplitFrom(t *testing.T, p Params, data []byte, cut BlockEnd, stop *BlockEnd, from int64) ([]byte, error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, p)
	if err != nil {
		return nil, err
	}
	s := Split{From: from, Cut: cut.Input, CutBit: cut.Bit, Stop: -1}
	end := int64(len(data))
	if stop != nil {
		s.Stop = stop.Input
		end = min(end, stop.Input+SplitLookahead(p))
	}
	if err := w.SetSplit(s); err != nil {
		return nil, err
	}
	if err := WriteAligned(w, data[from:end], from, w.Stopped); err != nil {
		return nil, err
	}
	if stop == nil || !w.Stopped() {
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if w.Missed() || (stop != nil && !w.Stopped()) {
		return nil, fmt.Errorf("the restarted engine missed its block ends")
	}
	return buf.Bytes(), nil
}

// sameBits reports whether seg, a part made by a restarted engine, holds
// the bits [from, to) of orig (and zero bits around them).
func sameBits(orig, seg []byte, from, to uint64) error {
	first, last := from/8, (to+7)/8
	if uint64(len(seg)) != last-first {
		return fmt.Errorf("part of %d bytes, want %d", len(seg), last-first)
	}
	for i := range seg {
		o := orig[first+uint64(i)]
		mask := byte(0xff)
		if i == 0 {
			mask &= 0xff << (from % 8)
		}
		if i == len(seg)-1 && to%8 != 0 {
			mask &= 0xff >> (8 - to%8)
		}
		if seg[i]&^mask != 0 || seg[i]&mask != o&mask {
			return fmt.Errorf("differs at byte %d of the part (stream byte %d)", i, first+uint64(i))
		}
	}
	return nil
}

// pickCuts chooses restart points among a stream's block ends: every
// stored run's end and about n more spread over the stream.
func pickCuts(ends []BlockEnd, n int) (cuts []int, storedEnds int) {
	step := max(1, len(ends)/n)
	for i := 0; i+1 < len(ends); i++ {
		runEnd := ends[i].Stored && !ends[i+1].Stored
		if runEnd {
			storedEnds++
		}
		if runEnd || i%step == step/2 {
			cuts = append(cuts, i)
		}
	}
	return cuts, storedEnds
}

// TestSplitsRealStreams forces restarts at many block ends of real gzip
// -1/-5/-9, gzip -1/-6/-9 --rsyncable and zlib -1/-4/-6/-9 streams (GNU
// gzip, python3's zlib), over
// SQL and over runs of stored blocks of real JPEG/PNG data, and checks that
// each restarted engine makes exactly the original's bits up to the next
// restart (or the stream's end).
func TestSplitsRealStreams(t *testing.T) {
	z := zlibReference(t)
	rng := rand.New(rand.NewPCG(14, 14))
	sql := genSQL(rng, 3<<20)
	tarLike := genTarLike(rng, 4<<20)
	type tcase struct {
		name string
		p    Params
		data []byte
		orig []byte
	}
	var cases []tcase
	inputs := []struct {
		name string
		data []byte
	}{{"sql", sql}, {"tar", tarLike}}
	for _, l := range []int{1, 5, 9} {
		for _, in := range inputs {
			cases = append(cases, tcase{fmt.Sprintf("gzip-%d-%s", l, in.name), GzipParams(l, RsyncOff), in.data,
				gzipReference(t, l, false, in.data)})
		}
	}
	for _, l := range []int{1, 6, 9} {
		for _, in := range inputs {
			cases = append(cases, tcase{fmt.Sprintf("gzip-%d-rsyncable-%s", l, in.name), GzipParams(l, RsyncUpstream), in.data,
				gzipReference(t, l, true, in.data)})
		}
	}
	for _, l := range []int{1, 4, 6, 9} {
		cases = append(cases, tcase{fmt.Sprintf("zlib-%d-sql", l), ZlibParams(l, 15, 8, DefaultStrategy), sql,
			z.compress(t, l, 15, 8, DefaultStrategy, 0, sql)})
	}
	cases = append(cases, tcase{"zlib-4-tar", ZlibParams(4, 15, 8, DefaultStrategy), tarLike,
		z.compress(t, 4, 15, 8, DefaultStrategy, 0, tarLike)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ends, out := blockEndsOf(t, tc.p, tc.data)
			if !bytes.Equal(out, tc.orig) {
				t.Fatalf("the full engine differs from the real tool at byte %d", firstDiff(out, tc.orig))
			}
			cuts, storedEnds := pickCuts(ends, 40)
			states := statesAt(t, tc.p, tc.data, ends, cuts)
			// The cheapest warm-up that restarts exactly, and the cheapest
			// that proves the restart, per restart.
			var first, proved [MaxWarm + 1]int
			for k, i := range cuts {
				var stop *BlockEnd
				to := uint64(len(tc.orig)) * 8
				if k+1 < len(cuts) {
					stop = &ends[cuts[k+1]]
					to = stop.Bit
				}
				for pk := Warm1; pk <= MaxWarm; pk++ {
					from := WarmStart(tc.p, ends[i].Input, pk)
					end := min(int64(len(tc.data)), ends[i].Input+SplitLookahead(tc.p))
					ok, err := ProveRestart(tc.p, tc.data[from:end], ends[i], pk, states[i])
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						continue
					}
					proved[pk]++
					seg, err := runSplit(t, tc.p, tc.data, ends[i], stop, pk)
					if err == nil {
						err = sameBits(tc.orig, seg, ends[i].Bit, to)
					}
					if err != nil {
						t.Errorf("restart at input %d proved with warm-up %d is not exact: %v", ends[i].Input, pk, err)
					}
					break
				}
				var err error
				kind := Warm1
				for ; kind <= MaxWarm; kind++ {
					var seg []byte
					seg, err = runSplit(t, tc.p, tc.data, ends[i], stop, kind)
					if err == nil {
						err = sameBits(tc.orig, seg, ends[i].Bit, to)
					}
					if err == nil {
						break
					}
				}
				if err != nil {
					t.Errorf("restart at input %d (bit %d): %v", ends[i].Input, ends[i].Bit, err)
					continue
				}
				first[kind]++
			}
			t.Logf("%d blocks, %d restarts (%d at stored-run ends); exact first with warm-up kind 1..4: %v, proved first: %v",
				len(ends), len(cuts), storedEnds, first[1:], proved[1:])
		})
	}
}

// statesAt runs the engine fed as ingest feeds it (WriteAligned) and
// returns its states at the block ends listed.
func statesAt(t *testing.T, p Params, data []byte, ends []BlockEnd, at []int) map[int]*State {
	t.Helper()
	want := map[int]bool{}
	for _, i := range at {
		want[i] = true
	}
	states := map[int]*State{}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	w.OnBlockEnd(func(e BlockEnd) {
		if e != ends[n] {
			t.Fatalf("block end %d: %+v, the first run had %+v", n, e, ends[n])
		}
		if want[n] {
			states[n] = w.State()
		}
		n++
	})
	if err := WriteAligned(w, data, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return states
}
