package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/larder/larder/internal/fixture"
	"github.com/larder/larder/recompress"
)

// BenchmarkChunkSizes chooses the chunk sizes by measurement: a 10-night
// series of Discourse classic backups (fixture builder, preset "bench":
// thousands of users, about 100k posts, 100 MB of uploads, outer gzip -1)
// is turned into canonical streams, chunked at several average sizes and
// deduplicated. For each size it reports what a repository would store:
// the new chunks of each stream gathered into 256 KiB frames, each
// zstd-compressed with its PADME padding and sealing overhead, and the
// metadata (one index entry per stored chunk, and each night's chunk
// lists, themselves chunked and deduplicated).
//
// The series is built once into .cache/series-bench10 (needs PostgreSQL,
// a few minutes); LARDER_SERIES_PRESET=medium makes a smaller one.
func BenchmarkChunkSizes(b *testing.B) {
	files := series(b)
	ctx := context.Background()
	var downloaded int64
	// Canonical streams of every night, kept on disk.
	work := b.TempDir()
	var nights [][]string
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			b.Fatal(err)
		}
		downloaded += fi.Size()
		in, err := os.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		sink := &dirSink{dir: filepath.Join(work, fmt.Sprint(i))}
		os.MkdirAll(sink.dir, 0o755)
		if _, err := recompress.Unpack(ctx, in, sink, recompress.Options{Name: f}); err != nil {
			b.Fatal(err)
		}
		in.Close()
		nights = append(nights, sink.paths)
	}
	pol, err := RandomPolynomial()
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	defer enc.Close()
	listParams := Params{Pol: pol, Min: 1 << 10, Max: 64 << 10, AvgBits: 12}
	type result struct {
		class                string
		avg                  int
		chunks, stored, meta int64
	}
	var results []result
	// Text streams (SQL, table data, JSON) change in scattered places every
	// night; bulk streams (the tar skeleton with the uploads, verbatim
	// bytes) change where files are added. Each class is measured alone.
	classes := []struct {
		name string
		of   func(string) bool
		bits []int
	}{
		{"text", func(p string) bool { return isText(p) }, []int{11, 12, 13, 14, 16}},
		{"bulk", func(p string) bool { return !isText(p) }, []int{13, 14, 16, 18, 20}},
	}
	for _, class := range classes {
		for _, bits := range class.bits {
			p := Params{Pol: pol, Min: 1 << (bits - 2), Max: 1 << (bits + 3), AvgBits: bits}
			if bits == 20 {
				p.Min, p.Max = 512<<10, 8<<20 // restic's sizes
			}
			if p.Max > MaxChunk {
				p.Max = MaxChunk
			}
			seen := map[[32]byte]bool{}
			seenList := map[[32]byte]bool{}
			r := result{class: class.name, avg: 1 << bits}
			for _, streams := range nights {
				for _, path := range streams {
					if !class.of(path) {
						continue
					}
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					var list bytes.Buffer
					var frame []byte // new chunks, sealed together (repository version 2)
					c := New(f, p)
					for {
						data, err := c.Next()
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						id := sha256.Sum256(data)
						list.Write(id[:])
						list.Write([]byte{byte(len(data)), byte(len(data) >> 8), byte(len(data) >> 16), byte(len(data) >> 24)})
						if seen[id] {
							continue
						}
						seen[id] = true
						r.chunks++
						r.meta += indexEntry
						if frame = append(frame, data...); len(frame) >= frameTarget {
							r.stored += stored(enc, frame)
							frame = frame[:0]
						}
					}
					if len(frame) > 0 {
						r.stored += stored(enc, frame)
					}
					f.Close()
					// The night's chunk list, chunked and deduplicated.
					lc := New(bytes.NewReader(list.Bytes()), listParams)
					for {
						data, err := lc.Next()
						if err == io.EOF {
							break
						}
						id := sha256.Sum256(data)
						if !seenList[id] {
							seenList[id] = true
							r.meta += stored(enc, data) + indexEntry
						}
					}
				}
			}
			results = append(results, r)
			b.Logf("%s avg %7d B: %7d chunks stored, data %10d B, metadata %9d B, total %10d B",
				r.class, r.avg, r.chunks, r.stored, r.meta, r.stored+r.meta)
			b.ReportMetric(float64(r.stored+r.meta)/1e6, fmt.Sprintf("%s-MB@%dK", r.class, r.avg>>10))
		}
	}
	b.Logf("%d nights, %d bytes downloaded", len(files), downloaded)
	for _, class := range classes {
		var best *result
		for i := range results {
			r := &results[i]
			if r.class == class.name && (best == nil || r.stored+r.meta < best.stored+best.meta) {
				best = r
			}
		}
		for _, r := range results {
			if r.class == class.name {
				b.Logf("%s avg %7d B stores %.3f× the best (%d B); %d chunks", r.class, r.avg,
					float64(r.stored+r.meta)/float64(best.stored+best.meta), best.avg, r.chunks)
			}
		}
	}
}

// isText tells the text streams from the bulk ones by the kind in the name
// dirSink gives them.
func isText(p string) bool {
	for _, k := range []recompress.Kind{recompress.KindSQL, recompress.KindPGData, recompress.KindJSON} {
		if len(p) > len(k.String()) && p[len(p)-len(k.String()):] == k.String() {
			return true
		}
	}
	return false
}

// indexEntry is what one stored chunk costs in index files: its ID (32),
// pack (32), type, the frame's offset and length, the chunk's length and
// place in the frame, the frame's length (uvarints), with the sealing
// overhead shared.
const indexEntry = 32 + 32 + 1 + 4 + 3 + 3 + 3 + 3 + 4

// frameTarget is the plaintext size at which a repository of version 2
// seals the new chunks of a stream gathered so far (repo.frameTarget; the
// chunk package cannot import repo).
const frameTarget = 256 << 10

// stored is the size a chunk takes in a pack: zstd, PADME padding, a
// length prefix, and the 24-byte nonce and 16-byte tag of its sealing.
func stored(enc *zstd.Encoder, data []byte) int64 {
	n := int64(len(enc.EncodeAll(data, nil)))
	if n > int64(len(data)) {
		n = int64(len(data))
	}
	return padme(n+5) + 24 + 16
}

// padme is the PADME padded length (Nikitin et al.).
func padme(l int64) int64 {
	if l < 2 {
		return l
	}
	e := 63 - leadingZeros(uint64(l))
	s := 64 - leadingZeros(uint64(e))
	z := e - s
	mask := int64(1)<<z - 1
	return (l + mask) &^ mask
}

func leadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<i) == 0; i-- {
		n++
	}
	return n
}

type dirSink struct {
	dir   string
	paths []string
}

func (d *dirSink) Stream(i int, k recompress.Kind) (io.WriteCloser, error) {
	p := filepath.Join(d.dir, fmt.Sprintf("%d-%v", i, k))
	d.paths = append(d.paths, p)
	return os.Create(p)
}

// series returns the cached 10-night series of classic backups.
func series(b *testing.B) []string {
	preset := os.Getenv("LARDER_SERIES_PRESET")
	if preset == "" {
		preset = "bench"
	}
	opts, err := fixture.Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	dir, _ := filepath.Abs(filepath.Join("..", ".cache", "series-"+preset+"10"))
	files, err := fixture.ClassicSeries(context.Background(), dir, opts, 10, fixture.ClassicOptions{OuterLevel: 1})
	if err != nil {
		b.Fatalf("building the 10-night series (needs PostgreSQL): %v", err)
	}
	return files
}
