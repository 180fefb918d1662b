package larder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/internal/benchutil"
	"github.com/larder/larder/internal/fixture"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
)

// The benchmarks run the real programs in child processes, larder and
// restic side by side on the same files in the same run, and report
// sizes, seconds and peak RSS. They build their fixtures once into .cache
// (needs PostgreSQL; a few minutes).

func TestMain(m *testing.M) { benchutil.Main(m, benchChild) }

// series returns the 10-night series of the benchmarks: the fixture
// builder's "bench" preset (thousands of users, about 100k posts, 100 MB
// of uploads), outer gzip -1.
func series(b *testing.B) []string {
	opts := fixture.Bench()
	dir, _ := filepath.Abs(filepath.Join(".cache", "series-bench10"))
	files, err := fixture.ClassicSeries(context.Background(), dir, opts, 10, fixture.ClassicOptions{OuterLevel: 1})
	if err != nil {
		b.Fatalf("building the 10-night series (needs PostgreSQL): %v", err)
	}
	return files
}

func buildLarder(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "larder")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/larder").CombinedOutput()
	if err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func needRestic(b *testing.B) {
	if _, err := exec.LookPath("restic"); err != nil {
		b.Fatalf("restic is needed for the side-by-side benchmark (.ci/run installs it): %v", err)
	}
}

func run(b *testing.B, env []string, name string, args ...string) (benchutil.Result, []byte) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	res, err := benchutil.Run(cmd)
	if err != nil {
		b.Fatalf("%s %v: %v", name, args, err)
	}
	return res, []byte(stdout.String())
}

func repoSize(dir string) int64 { return benchutil.DirSize(dir) }

// BenchmarkSeries10 is the end-to-end figure: a 10-night series ingested
// night after night by `larder ingest` with a write key and by `restic
// backup`, then every night restored by both. It reports the total and
// per-night stored bytes against the downloaded bytes, the seconds of
// ingest and restore, and the peak RSS.
func BenchmarkSeries10(b *testing.B) {
	needRestic(b)
	files := series(b)
	larder := buildLarder(b)
	work := b.TempDir()
	pass := filepath.Join(work, "pass")
	os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600)
	lrepo, rrepo := filepath.Join(work, "larder"), filepath.Join(work, "restic")
	env := []string{"LARDER_REPO=" + lrepo, "LARDER_PASSWORD_FILE=" + pass, "LARDER_CACHE_DIR=" + filepath.Join(work, "cache"),
		"RESTIC_PASSWORD=benchmark passphrase", "RESTIC_REPOSITORY=" + rrepo, "RESTIC_CACHE_DIR=" + filepath.Join(work, "rcache")}
	run(b, env, larder, "init")
	wkey := filepath.Join(work, "write.key")
	run(b, env, larder, "key", "new-write", "--out", wkey, "--no-passphrase")
	run(b, env, "restic", "init", "--quiet")

	var downloaded, lPrev, rPrev int64
	var lIngest, rBackup, lRestore, rRestore time.Duration
	var lPeak, rPeak, lrPeak, rrPeak float64
	var ids []string
	b.Logf("%-5s %10s %12s %12s %9s %9s %9s %9s", "night", "download", "larder+", "restic+", "ingest", "backup", "larderMB", "resticMB")
	for i, f := range files {
		fi, _ := os.Stat(f)
		downloaded += fi.Size()
		li, out := run(b, env, larder, "--key", wkey, "--json", "ingest", f)
		id, _ := ingestedSnapshot(b, out)
		ids = append(ids, id)
		rb, _ := run(b, env, "restic", "backup", "--quiet", f)
		lSize, rSize := repoSize(lrepo), repoSize(rrepo)
		b.Logf("%-5d %10d %12d %12d %8.1fs %8.1fs %9.1f %9.1f", i+1, fi.Size(), lSize-lPrev, rSize-rPrev,
			li.Wall.Seconds(), rb.Wall.Seconds(), li.PeakMB, rb.PeakMB)
		lPrev, rPrev = lSize, rSize
		lIngest += li.Wall
		rBackup += rb.Wall
		lPeak, rPeak = max(lPeak, li.PeakMB), max(rPeak, rb.PeakMB)
	}
	out := filepath.Join(work, "out")
	os.MkdirAll(out, 0o755)
	for i, id := range ids {
		lr, _ := run(b, env, larder, "restore", id, "-o", filepath.Join(out, "larder.tar.gz"), "--overwrite")
		lRestore += lr.Wall
		lrPeak = max(lrPeak, lr.PeakMB)
		target := filepath.Join(out, fmt.Sprint("restic", i))
		rr, _ := run(b, env, "restic", "restore", "--quiet", "--target", target, "latest", "--path", files[i])
		os.RemoveAll(target)
		rRestore += rr.Wall
		rrPeak = max(rrPeak, rr.PeakMB)
	}
	n := float64(len(files))
	b.ReportMetric(float64(downloaded)/1e6, "downloaded-MB")
	b.ReportMetric(float64(lPrev)/1e6, "larder-MB")
	b.ReportMetric(float64(rPrev)/1e6, "restic-MB")
	b.ReportMetric(float64(lPrev)/float64(downloaded), "larder-share")
	b.ReportMetric(float64(rPrev)/float64(downloaded), "restic-share")
	b.ReportMetric(lIngest.Seconds()/n, "larder-ingest-s/night")
	b.ReportMetric(rBackup.Seconds()/n, "restic-backup-s/night")
	b.ReportMetric(lRestore.Seconds()/n, "larder-restore-s/night")
	b.ReportMetric(rRestore.Seconds()/n, "restic-restore-s/night")
	b.ReportMetric(lPeak, "larder-ingest-RSS-MiB")
	b.ReportMetric(lrPeak, "larder-restore-RSS-MiB")
	b.ReportMetric(rPeak, "restic-backup-RSS-MiB")
	b.ReportMetric(rrPeak, "restic-restore-RSS-MiB")
}

// BenchmarkStoreRestore measures the repository layer alone: the canonical
// streams of one night (its tar skeleton and dump.sql) are chunked,
// compressed, sealed and packed, then read back, in child processes;
// restic backs up and restores the same files.
func BenchmarkStoreRestore(b *testing.B) {
	needRestic(b)
	files := series(b)
	work := b.TempDir()
	streams := filepath.Join(work, "streams")
	os.MkdirAll(streams, 0o755)
	// The canonical streams of night 1, as files.
	in, err := os.Open(files[0])
	if err != nil {
		b.Fatal(err)
	}
	sink := &fileSink{dir: streams}
	if _, err := recompress.Unpack(context.Background(), bufio.NewReaderSize(in, 1<<20), sink, recompress.Options{}); err != nil {
		b.Fatal(err)
	}
	in.Close()
	var total int64
	for _, p := range sink.paths {
		fi, _ := os.Stat(p)
		total += fi.Size()
	}
	// A repository with a fast-KDF master key file for the children.
	crypto.TestOnlyFastKDF()
	pol, _ := chunk.RandomPolynomial()
	m, _ := crypto.NewMasterKey(nil, uint64(pol))
	kf, _ := m.MarshalKeyFile([]byte("pw"), nil)
	lrepo := filepath.Join(work, "larder")
	r, err := repo.Init(context.Background(), backend.OpenLocal(lrepo), m, kf)
	if err != nil {
		b.Fatal(err)
	}
	r.Close()
	os.WriteFile(filepath.Join(work, "master.key"), kf, 0o600)
	self, _ := os.Executable()
	child := func(job string) benchutil.Result {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), benchutil.ChildEnv+"="+job)
		cmd.Stderr = os.Stderr
		res, err := benchutil.Run(cmd)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	jobArgs := strings.Join(append([]string{lrepo, filepath.Join(work, "master.key"), filepath.Join(work, "cache")}, sink.paths...), "\x1f")
	store := child("store\x1f" + jobArgs)
	restore := child("restore\x1f" + jobArgs)

	env := []string{"RESTIC_PASSWORD=pw", "RESTIC_REPOSITORY=" + filepath.Join(work, "restic"), "RESTIC_CACHE_DIR=" + filepath.Join(work, "rcache")}
	run(b, env, "restic", "init", "--quiet")
	rb, _ := run(b, env, "restic", append([]string{"backup", "--quiet"}, sink.paths...)...)
	rr, _ := run(b, env, "restic", "restore", "--quiet", "--target", filepath.Join(work, "rout"), "latest")

	mb := float64(total) / 1e6
	b.ReportMetric(mb, "streams-MB")
	b.ReportMetric(mb/store.Wall.Seconds(), "larder-store-MB/s")
	b.ReportMetric(mb/restore.Wall.Seconds(), "larder-restore-MB/s")
	b.ReportMetric(mb/rb.Wall.Seconds(), "restic-backup-MB/s")
	b.ReportMetric(mb/rr.Wall.Seconds(), "restic-restore-MB/s")
	b.ReportMetric(store.PeakMB, "larder-store-RSS-MiB")
	b.ReportMetric(restore.PeakMB, "larder-restore-RSS-MiB")
	b.ReportMetric(rb.PeakMB, "restic-backup-RSS-MiB")
	b.ReportMetric(rr.PeakMB, "restic-restore-RSS-MiB")
	b.ReportMetric(float64(benchutil.DirSize(lrepo))/1e6, "larder-repo-MB")
	b.ReportMetric(float64(benchutil.DirSize(filepath.Join(work, "restic")))/1e6, "restic-repo-MB")
}

type fileSink struct {
	dir   string
	paths []string
}

func (s *fileSink) Stream(i int, k recompress.Kind) (io.WriteCloser, error) {
	p := filepath.Join(s.dir, fmt.Sprintf("%d.%v", i, k))
	s.paths = append(s.paths, p)
	return os.Create(p)
}

// benchChild runs a repository job in a child process: store the stream
// files as one snapshot, or read the newest snapshot's streams back.
func benchChild(job string) error {
	if p := os.Getenv("LARDER_BENCH_CPUPROFILE"); p != "" {
		f, _ := os.Create(p + "-" + strings.SplitN(job, "\x1f", 2)[0])
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	parts := strings.Split(job, "\x1f")
	kind, repoDir, keyFile, cache, paths := parts[0], parts[1], parts[2], parts[3], parts[4:]
	ctx := context.Background()
	kfData, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	kf, err := crypto.ParseKeyFile(kfData, []byte("pw"))
	if err != nil {
		return err
	}
	r, err := repo.Open(ctx, backend.OpenLocal(repoDir), kf.Master)
	if err != nil {
		return err
	}
	defer r.Close()
	r.SetCacheDir(cache)
	switch kind {
	case "store":
		w, err := r.NewWriter(ctx)
		if err != nil {
			return err
		}
		defer w.Close(ctx)
		m := &repo.Manifest{Name: "streams"}
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			k := recompress.KindSQL
			if strings.HasSuffix(p, "tar") {
				k = recompress.KindTar
			}
			st, err := w.NewStream(ctx, uint8(k), ClassOf(k))
			if err != nil {
				return err
			}
			_, err = io.Copy(st, bufio.NewReaderSize(f, 1<<20))
			f.Close()
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			m.Streams = append(m.Streams, st.Ref())
		}
		_, err = w.Commit(ctx, m, [32]byte{})
		return err
	case "restore":
		snaps, err := r.Snapshots(ctx, true)
		if err != nil || len(snaps) == 0 {
			return fmt.Errorf("no snapshot: %v", err)
		}
		for _, ref := range snaps[len(snaps)-1].Manifest.Streams {
			rc, err := r.OpenStream(ctx, ref)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown job %q", kind)
}

// ingestedSnapshot is the snapshot an ingest's --json output names (its
// "ingest" line; docs/JSON.md).
func ingestedSnapshot(b *testing.B, out []byte) (snapshot string, newBytes int64) {
	b.Helper()
	for _, l := range bytes.Split(out, []byte("\n")) {
		var ev struct {
			MessageType string `json:"message_type"`
			Snapshot    string `json:"snapshot"`
			NewBytes    int64  `json:"new_bytes"`
		}
		if json.Unmarshal(l, &ev) == nil && ev.MessageType == "ingest" && ev.Snapshot != "" {
			return ev.Snapshot, ev.NewBytes
		}
	}
	b.Fatalf("no ingest line in the output: %s", out)
	return "", 0
}
