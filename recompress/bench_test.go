package recompress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/larder/larder/internal/benchutil"
	"github.com/larder/larder/internal/fixture"
)

// The throughput benchmark runs Unpack and Pack on a backup of at least
// 1 GB made by the fixture builder (outer gzip -1, as Discourse does today)
// in child processes, so that their peak RSS can be read, and runs
// `gzip -dc` and `gzip -1` on the same data in the same run.
//
// The backup is made once and kept in .cache/bench-1g (or taken from
// LARDER_BENCH_BACKUP); making it needs PostgreSQL and takes a minute.

func TestMain(m *testing.M) { benchutil.Main(m, benchChild) }

// fileSink writes each stream to dir/stream-N.
type fileSink struct {
	dir string
}

func (s *fileSink) Stream(i int, k Kind) (io.WriteCloser, error) {
	f, err := os.Create(filepath.Join(s.dir, "stream-"+strconv.Itoa(i)))
	if err != nil {
		return nil, err
	}
	return &bufferedFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

type bufferedFile struct {
	f *os.File
	w *bufio.Writer
}

func (b *bufferedFile) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b *bufferedFile) Close() error {
	if err := b.w.Flush(); err != nil {
		return err
	}
	return b.f.Close()
}

func benchChild(job string) error {
	ctx := context.Background()
	kind, rest, _ := cutString(job, ":")
	file, dir, _ := cutString(rest, ":")
	switch kind {
	case "unpack":
		in, err := os.Open(file)
		if err != nil {
			return err
		}
		defer in.Close()
		res, err := Unpack(ctx, bufio.NewReaderSize(in, 1<<20), &fileSink{dir: dir}, Options{Name: file})
		if err != nil {
			return err
		}
		enc, err := res.Recipe.MarshalBinary()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "recipe"), enc, 0o600); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(res.Summary)
	case "pack":
		enc, err := os.ReadFile(filepath.Join(dir, "recipe"))
		if err != nil {
			return err
		}
		var rc Recipe
		if err := rc.UnmarshalBinary(enc); err != nil {
			return err
		}
		var open []*os.File
		defer func() {
			for _, f := range open {
				f.Close()
			}
		}()
		out, err := os.Create(file)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(out, 1<<20)
		err = Pack(ctx, &rc, func(i int, k Kind) (io.Reader, error) {
			f, err := os.Open(filepath.Join(dir, "stream-"+strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			open = append(open, f)
			return bufio.NewReaderSize(f, 1<<20), nil
		}, w)
		if err == nil {
			err = w.Flush()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return fmt.Errorf("unknown bench job %q", job)
}

func cutString(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// measure runs cmd and returns its wall time and peak RSS in MiB.
func measure(b *testing.B, cmd *exec.Cmd) (time.Duration, float64) {
	b.Helper()
	cmd.Stderr = os.Stderr
	res, err := benchutil.Run(cmd)
	if err != nil {
		b.Fatal(err)
	}
	return res.Wall, res.PeakMB
}

// bigBackup returns a classic backup of at least 1 GB.
func bigBackup(b *testing.B) string {
	if p := os.Getenv("LARDER_BENCH_BACKUP"); p != "" {
		return p
	}
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "bench-1g"))
	if err != nil {
		b.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz")); len(m) > 0 {
		return m[0]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	opts := fixture.Bench()
	opts.Dir = filepath.Join(dir, "work")
	opts.UploadBytes = 1 << 30
	opts.Uploads = 0
	ctx := context.Background()
	s, err := fixture.NewSeries(ctx, opts)
	if err != nil {
		b.Fatalf("making the 1 GB backup (needs PostgreSQL): %v", err)
	}
	defer s.Close()
	p, err := s.WriteClassic(ctx, dir, fixture.ClassicOptions{OuterLevel: 1})
	if err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(opts.Dir)
	// WriteClassic puts the file in a folder per format.
	final := filepath.Join(dir, filepath.Base(p))
	if err := os.Rename(p, final); err != nil {
		b.Fatal(err)
	}
	return final
}

func BenchmarkUnpackPack1GB(b *testing.B) {
	backup := bigBackup(b)
	fi, err := os.Stat(backup)
	if err != nil {
		b.Fatal(err)
	}
	if fi.Size() < 1e9 {
		b.Fatalf("%s has %d bytes; the benchmark wants at least 1 GB", backup, fi.Size())
	}
	work := b.TempDir()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	child := func(job string) *exec.Cmd {
		c := exec.Command(self)
		c.Env = append(os.Environ(), benchutil.ChildEnv+"="+job)
		return c
	}
	mb := float64(fi.Size()) / 1e6

	var summary bytesWriter
	uc := child("unpack:" + backup + ":" + work)
	uc.Stdout = &summary
	unpackT, unpackRSS := measure(b, uc)
	rebuilt := filepath.Join(work, "rebuilt")
	packT, packRSS := measure(b, child("pack:"+rebuilt+":"+work))
	if out, err := exec.Command("cmp", backup, rebuilt).CombinedOutput(); err != nil {
		b.Fatalf("the rebuilt file differs: %v %s", err, out)
	}
	tarPath := filepath.Join(work, "plain.tar")
	tf, _ := os.Create(tarPath)
	dc := exec.Command("gzip", "-dc", backup)
	dc.Stdout = tf
	gunzipT, gunzipRSS := measure(b, dc)
	tf.Close()
	gz := exec.Command("gzip", "-1", "-c", tarPath)
	gz.Stdout = io.Discard
	gzipT, gzipRSS := measure(b, gz)

	b.ReportMetric(mb, "backup-MB")
	b.ReportMetric(mb/unpackT.Seconds(), "unpack-MB/s")
	b.ReportMetric(mb/packT.Seconds(), "pack-MB/s")
	b.ReportMetric(mb/gunzipT.Seconds(), "gzip-dc-MB/s")
	b.ReportMetric(mb/gzipT.Seconds(), "gzip-1-MB/s")
	b.ReportMetric(gunzipT.Seconds()/unpackT.Seconds(), "unpack/gzip-dc")
	b.ReportMetric(gzipT.Seconds()/packT.Seconds(), "pack/gzip-1")
	b.ReportMetric(unpackRSS, "unpack-RSS-MiB")
	b.ReportMetric(packRSS, "pack-RSS-MiB")
	b.ReportMetric(gunzipRSS, "gzip-dc-RSS-MiB")
	b.Logf("gzip -dc RSS %.1f MiB, gzip -1 RSS %.1f MiB; summary %s", gunzipRSS, gzipRSS, summary.String())
}

type bytesWriter struct{ b []byte }

func (w *bytesWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesWriter) String() string              { return string(w.b) }
