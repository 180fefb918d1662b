package deflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The benchmarks compare each engine with the C original on the same input
// in the same run and report the ratio (ours/C speed; above 1 is faster).

const benchSize = 32 << 20

func benchInputs() []input {
	rng := rand.New(rand.NewPCG(11, 11))
	return []input{{"sql", genSQL(rng, benchSize)}, {"incompressible", genRandom(rng, benchSize)}}
}

func oursSpeed(b *testing.B, p Params, data []byte) time.Duration {
	best := time.Duration(1 << 62)
	w, _ := NewWriter(io.Discard, p)
	for i := 0; i < 2; i++ {
		start := time.Now()
		if err := w.Reset(io.Discard, p); err != nil {
			b.Fatal(err)
		}
		w.Write(data)
		w.Close()
		best = min(best, time.Since(start))
	}
	return best
}

func BenchmarkEngineVsGzip(b *testing.B) {
	dir := b.TempDir()
	for _, in := range benchInputs() {
		f := filepath.Join(dir, in.name)
		if err := os.WriteFile(f, in.data, 0o600); err != nil {
			b.Fatal(err)
		}
		for _, level := range []int{1, 5, 9} {
			b.Run(fmt.Sprintf("%s/gzip-%d", in.name, level), func(b *testing.B) {
				ref := time.Duration(1 << 62)
				for i := 0; i < 2; i++ {
					start := time.Now()
					cmd := exec.Command("gzip", fmt.Sprintf("-%d", level), "-c", f)
					cmd.Stdout = io.Discard
					if err := cmd.Run(); err != nil {
						b.Fatal(err)
					}
					ref = min(ref, time.Since(start))
				}
				ours := oursSpeed(b, GzipParams(level, RsyncOff), in.data)
				mb := float64(len(in.data)) / 1e6
				b.ReportMetric(mb/ours.Seconds(), "MB/s")
				b.ReportMetric(mb/ref.Seconds(), "C-MB/s")
				b.ReportMetric(ref.Seconds()/ours.Seconds(), "ratio")
			})
		}
	}
}

func BenchmarkEngineVsZlib(b *testing.B) {
	z := zlibReference(b)
	for _, in := range benchInputs() {
		for _, level := range []int{4, 6} {
			b.Run(fmt.Sprintf("%s/zlib-%d", in.name, level), func(b *testing.B) {
				ref := time.Duration(z.timeCompress(b, level, 15, 8, DefaultStrategy, in.data, 2))
				ours := oursSpeed(b, ZlibParams(level, 15, 8, DefaultStrategy), in.data)
				mb := float64(len(in.data)) / 1e6
				b.ReportMetric(mb/ours.Seconds(), "MB/s")
				b.ReportMetric(mb/ref.Seconds(), "C-MB/s")
				b.ReportMetric(ref.Seconds()/ours.Seconds(), "ratio")
			})
		}
	}
}

// BenchmarkIdentify1GiB identifies the engine of a 1 GiB zlib member (as
// pg_dump writes it) and of a 1 GiB GNU gzip member. Identification reads
// only the head of a member, so its time and memory do not grow with it.
func BenchmarkIdentify1GiB(b *testing.B) {
	z := zlibReference(b)
	rng := rand.New(rand.NewPCG(12, 12))
	// 1 GiB of dump text: 16 MiB of SQL repeated with variations.
	base := genSQL(rng, 16<<20)
	member := make([]byte, 0, 1<<30)
	for len(member) < 1<<30 {
		member = append(member, base[:rng.IntN(len(base))]...)
	}
	member = member[:1<<30]
	zsrc := z.compress(b, 4, 15, 8, DefaultStrategy, 0, member)
	gsrc := gzipReference(b, 1, false, member)
	member = nil
	runtime.GC()
	for _, tc := range []struct {
		name string
		src  []byte
		hint Hint
	}{{"zlib-4", zsrc, Hint{GzipXFL: 0, ZlibLevel: -1}}, {"gzip-1", gsrc, Hint{GzipXFL: 4, ZlibLevel: -1, PreferGzip: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ReportAllocs()
			b.ResetTimer()
			var res Result
			for i := 0; i < b.N; i++ {
				var err error
				res, err = Identify(tc.src[:IdentifyPrefix], tc.hint)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(len(tc.src))/(1<<20), "member-MiB")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
			b.Logf("%s: %v from the first %d bytes of %d", tc.name, res.Params, IdentifyPrefix, len(tc.src))
		})
	}
}

// BenchmarkInflate compares the Inflater with compress/flate's Reader on
// the same streams, both reading through a bufio.Reader, and reports both
// speeds (of decompressed bytes) and the ratio (ours over compress/flate's;
// above 1 is faster). Runs alternate between the two, and the best of five
// counts, so that other load on the machine hits both alike.
func BenchmarkInflate(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 13))
	sql := genSQL(rng, benchSize)
	// Stored-heavy: incompressible runs with a little text between.
	var heavy []byte
	for len(heavy) < benchSize {
		heavy = append(heavy, genRandom(rng, 200_000+rng.IntN(400_000))...)
		heavy = append(heavy, genSQL(rng, 20_000+rng.IntN(30_000))...)
	}
	z := zlibReference(b)
	for _, s := range []stream{
		{"gzip-1-sql", sql, gzipReference(b, 1, false, sql)},
		{"zlib-4-sql", sql, z.compress(b, 4, 15, 8, DefaultStrategy, 0, sql)},
		{"gzip-6-stored-heavy", heavy, gzipReference(b, 6, false, heavy)},
	} {
		b.Run(s.name, func(b *testing.B) {
			br := bufio.NewReaderSize(nil, 64<<10)
			buf := make([]byte, 64<<10)
			f := NewInflater(br, nil)
			fl := flate.NewReader(br)
			run := func(r io.Reader, reset func() error) time.Duration {
				start := time.Now()
				br.Reset(bytes.NewReader(s.src))
				if err := reset(); err != nil {
					b.Fatal(err)
				}
				// The wrappers keep io.CopyBuffer from using WriteTo or ReadFrom.
				n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
				if err != nil || n != int64(len(s.data)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
				return time.Since(start)
			}
			// From a BufferedSource lending 64 KiB at a time, as the gzip
			// layer's tee lends its bufio.Reader's bytes: the bulk path.
			cs := &chunkSource{sizes: []int{64 << 10}}
			ours, bulk, ref := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
			for i := 0; i < 5; i++ {
				ours = min(ours, run(f, func() error { f.Reset(br, nil); return nil }))
				bulk = min(bulk, run(f, func() error {
					*cs = chunkSource{b: s.src, sizes: cs.sizes}
					f.Reset(cs, nil)
					return nil
				}))
				ref = min(ref, run(fl, func() error { return fl.(flate.Resetter).Reset(br, nil) }))
			}
			mb := float64(len(s.data)) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "MB/s")
			b.ReportMetric(mb/bulk.Seconds(), "bulk-MB/s")
			b.ReportMetric(mb/ref.Seconds(), "flate-MB/s")
			b.ReportMetric(ref.Seconds()/ours.Seconds(), "ratio")
			b.ReportMetric(ref.Seconds()/bulk.Seconds(), "bulk-ratio")
		})
	}
}
