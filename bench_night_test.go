package larder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/larder/larder/internal/benchutil"
	"github.com/larder/larder/internal/fixture"
)

// nightSeries returns two nights like the one of issue 14: a classic
// Discourse backup (the bench preset's forum, so a dump.sql of a few
// hundred MB at pg_dump's zlib -4, and about 160 MB of incompressible
// JPEG/PNG-like uploads), outer gzip -1. Built once into .cache.
func nightSeries(b *testing.B) []string {
	opts := fixture.Bench()
	opts.UploadBytes, opts.Uploads = 160<<20, 1600
	dir, _ := filepath.Abs(filepath.Join(".cache", "series-night2"))
	files, err := fixture.ClassicSeries(context.Background(), dir, opts, 2, fixture.ClassicOptions{OuterLevel: 1})
	if err != nil {
		b.Fatalf("building the night series (needs PostgreSQL): %v", err)
	}
	return files
}

// BenchmarkNight is issue 14's acceptance figure. In one run, on one night
// like the (outer gzip -1 over a tar of uploads and a zlib -4
// dump.sql.gz), it measures gzip -1 and pigz -p N of the tar, restic backup
// (second night) and restore, and larder's fresh ingest, second-night
// ingest and restore, and reports every time as a ratio to gzip -1's, with
// peak RSS. The larder runs are made at GOMAXPROCS=1 and at GOMAXPROCS=N
// (all cores); the scaling metrics are the 1-core time over the N-core
// time. Times are wall clock of child processes; compare ratios within a
// run, never absolute seconds across runs.
func BenchmarkNight(b *testing.B) {
	needRestic(b)
	for _, tool := range []string{"gzip", "pigz"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is needed: %v", tool, err)
		}
	}
	files := nightSeries(b)
	larder := buildLarder(b)
	work := b.TempDir()
	ncpu := runtime.NumCPU()

	// The tar of night 2, for gzip -1 and pigz of the same bytes.
	tarPath := filepath.Join(work, "night.tar")
	gunzipTo(b, files[1], tarPath)
	gz, _ := run(b, nil, "sh", "-c", "gzip -1 -c "+tarPath+" > /dev/null")
	pz, _ := run(b, nil, "sh", "-c", fmt.Sprintf("pigz -1 -p %d -c %s > /dev/null", ncpu, tarPath))
	os.Remove(tarPath)

	renv := []string{"RESTIC_PASSWORD=benchmark passphrase", "RESTIC_REPOSITORY=" + filepath.Join(work, "restic"),
		"RESTIC_CACHE_DIR=" + filepath.Join(work, "rcache")}
	run(b, renv, "restic", "init", "--quiet")
	run(b, renv, "restic", "backup", "--quiet", files[0])
	rb, _ := run(b, renv, "restic", "backup", "--quiet", files[1])
	rr, _ := run(b, renv, "restic", "restore", "--quiet", "--target", filepath.Join(work, "rout"), "latest", "--path", files[1])
	os.RemoveAll(filepath.Join(work, "rout"))

	gzs := gz.Wall.Seconds()
	ratio := func(r benchutil.Result) float64 { return r.Wall.Seconds() / gzs }
	cores := func(r benchutil.Result) float64 { return r.CPU.Seconds() / r.Wall.Seconds() }
	b.ReportMetric(gzs, "gzip-1-s")
	b.ReportMetric(ratio(pz), "pigz-x")
	b.ReportMetric(ratio(rb), "restic-backup2-x")
	b.ReportMetric(ratio(rr), "restic-restore-x")
	b.Logf("gzip -1 %.2fs, pigz -p %d %.2fs, restic backup (night 2) %.2fs, restore %.2fs",
		gzs, ncpu, pz.Wall.Seconds(), rb.Wall.Seconds(), rr.Wall.Seconds())

	var peak float64
	var all [2][3]benchutil.Result
	for k, procs := range []int{ncpu, 1} {
		runs := larderNight(b, larder, filepath.Join(work, fmt.Sprint("p", procs)), procs, files)
		all[k] = runs
		for _, r := range runs {
			peak = max(peak, r.PeakMB)
		}
		b.Logf("larder GOMAXPROCS=%d: fresh ingest %.2fs (%.2fx), second night %.2fs (%.2fx), restore %.2fs (%.2fx); RSS %.0f/%.0f/%.0f MiB",
			procs, runs[0].Wall.Seconds(), ratio(runs[0]), runs[1].Wall.Seconds(), ratio(runs[1]),
			runs[2].Wall.Seconds(), ratio(runs[2]), runs[0].PeakMB, runs[1].PeakMB, runs[2].PeakMB)
		// CPU time moves less than wall time on a shared machine; cores
		// is how many the run kept busy on average.
		b.Logf("  CPU: fresh %.2fs (%.2f cores), second %.2fs (%.2f), restore %.2fs (%.2f); gzip -1 %.2fs",
			runs[0].CPU.Seconds(), cores(runs[0]), runs[1].CPU.Seconds(), cores(runs[1]),
			runs[2].CPU.Seconds(), cores(runs[2]), gz.CPU.Seconds())
	}
	names := [3]string{"fresh", "second", "restore"}
	for i, n := range names {
		b.ReportMetric(ratio(all[0][i]), "larder-"+n+"-x")
		b.ReportMetric(ratio(all[1][i]), "larder-"+n+"-1cpu-x")
		b.ReportMetric(all[1][i].Wall.Seconds()/all[0][i].Wall.Seconds(), "scaling-"+n)
		b.ReportMetric(all[0][i].PeakMB, "larder-"+n+"-RSS-MiB")
	}
	b.ReportMetric(peak, "larder-peak-RSS-MiB")
	b.ReportMetric(float64(ncpu), "cores")
}

// larderNight runs, at GOMAXPROCS=procs in a repository of its own under
// dir: a fresh ingest of night 1, the ingest of night 2 and the restore of
// night 2. It returns the three measured runs in that order.
func larderNight(b *testing.B, larder, dir string, procs int, files []string) [3]benchutil.Result {
	os.MkdirAll(dir, 0o755)
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600)
	env := []string{"LARDER_REPO=" + filepath.Join(dir, "repo"), "LARDER_PASSWORD_FILE=" + pass,
		"LARDER_CACHE_DIR=" + filepath.Join(dir, "cache"), fmt.Sprint("GOMAXPROCS=", procs)}
	run(b, env, larder, "init")
	wkey := filepath.Join(dir, "write.key")
	run(b, env, larder, "key", "new-write", "--out", wkey, "--no-passphrase")
	fresh, _ := run(b, env, larder, "--key", wkey, "ingest", files[0])
	second, out := run(b, env, larder, "--key", wkey, "--json", "ingest", files[1])
	var id string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var ev struct{ Snapshot string }
		if dec.Decode(&ev) != nil {
			break
		}
		if ev.Snapshot != "" {
			id = ev.Snapshot
		}
	}
	if id == "" {
		b.Fatalf("no snapshot ID in the ingest's JSON output:\n%s", out)
	}
	dst := filepath.Join(dir, "restored.tar.gz")
	restore, _ := run(b, env, larder, "restore", id, "-o", dst, "--overwrite")
	os.Remove(dst)
	os.RemoveAll(filepath.Join(dir, "repo"))
	return [3]benchutil.Result{fresh, second, restore}
}

func gunzipTo(b *testing.B, src, dst string) {
	b.Helper()
	if out, err := exec.Command("sh", "-c", "gzip -dc "+src+" > "+dst).CombinedOutput(); err != nil {
		b.Fatalf("gunzip %s: %v\n%s", src, err, out)
	}
}
