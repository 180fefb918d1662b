package larder

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/larder/larder/internal/benchutil"
	"github.com/larder/larder/internal/s3test"
)

// BenchmarkS3Night is the storage figure: one night of the benchmark
// series (BenchmarkSeries10's first) ingested by `larder ingest` with a
// write key and restored to a file by `larder restore`, once with the
// repository in a local folder and once on S3 (versitygw on loopback,
// internal/s3test: the writer's credential for the ingest, the master's
// for the restore; the default --connections), and backed up and
// restored by restic to the same S3 server. It reports the seconds, the
// ratios S3/folder and larder/restic on S3 (the goal: S3 within 1.3x of
// the folder), and the peak RSS of each child process.
//
// Each repository starts empty, and each restore starts with an empty
// cache (the master restores on its own machine, not the forum
// server's): both pay for reading the index. The S3 server runs on the
// same machine and takes CPU of its own; its memory is not counted.
// Every restored file is compared with the night, outside the timings.
func BenchmarkS3Night(b *testing.B) {
	needRestic(b)
	night := series(b)[0]
	fi, err := os.Stat(night)
	if err != nil {
		b.Fatal(err)
	}
	want := fileSHA256(b, night)
	larder := buildLarder(b)
	srv := s3test.New(b)
	work := b.TempDir()
	pass := filepath.Join(work, "pass")
	if err := os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	// larderRun ingests and restores the night with the repository at
	// location; master and writer are the storage credentials of the
	// master's and the forum server's commands (nil for a folder).
	larderRun := func(name, location string, master, writer []string) (ingest, restore benchutil.Result, stored int64) {
		dir := filepath.Join(work, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		base := []string{"LARDER_REPO=" + location, "LARDER_PASSWORD_FILE=" + pass}
		menv := slices.Concat(base, master, []string{"LARDER_CACHE_DIR=" + filepath.Join(dir, "master-cache")})
		wenv := slices.Concat(base, writer, []string{"LARDER_CACHE_DIR=" + filepath.Join(dir, "writer-cache")})
		run(b, menv, larder, "init", "--quiet")
		wkey := filepath.Join(dir, "write.key")
		run(b, menv, larder, "key", "new-write", "--out", wkey, "--no-passphrase", "--quiet")
		ingest, out := run(b, wenv, larder, "--key", wkey, "--json", "ingest", night)
		snap, newBytes := ingestedSnapshot(b, out)
		restored := filepath.Join(dir, "restored.tar.gz")
		restore, _ = run(b, menv, larder, "restore", snap, "-o", restored, "--quiet")
		if got := fileSHA256(b, restored); got != want {
			b.Fatalf("%s: the restored night has SHA-256 %s, the night %s", name, got, want)
		}
		os.Remove(restored)
		b.Logf("%-7s ingest %6.1fs %6.1f MiB  restore %6.1fs %6.1f MiB", name,
			ingest.Wall.Seconds(), ingest.PeakMB, restore.Wall.Seconds(), restore.PeakMB)
		return ingest, restore, newBytes
	}

	fIngest, fRestore, fStored := larderRun("folder", filepath.Join(work, "folder", "repo"), nil, nil)
	sIngest, sRestore, sStored := larderRun("s3", srv.URL("larder"), srv.Env(false), srv.Env(true))

	// restic on the same server. Its backup removes its lock at the end,
	// which the writer's credential may not: it gets the master's.
	renv := append(srv.Env(false), "RESTIC_PASSWORD=benchmark passphrase",
		"RESTIC_REPOSITORY="+srv.URL("restic"), "RESTIC_CACHE_DIR="+filepath.Join(work, "restic-cache"))
	run(b, renv, "restic", "init", "--quiet")
	rBackup, _ := run(b, renv, "restic", "backup", "--quiet", night)
	target := filepath.Join(work, "restic-out")
	renv[len(renv)-1] = "RESTIC_CACHE_DIR=" + filepath.Join(work, "restic-restore-cache")
	rRestore, _ := run(b, renv, "restic", "restore", "--quiet", "--target", target, "latest")
	if got := fileSHA256(b, filepath.Join(target, night)); got != want {
		b.Fatalf("restic: the restored night has SHA-256 %s, the night %s", got, want)
	}
	os.RemoveAll(target)
	b.Logf("%-7s backup %6.1fs %6.1f MiB  restore %6.1fs %6.1f MiB", "restic",
		rBackup.Wall.Seconds(), rBackup.PeakMB, rRestore.Wall.Seconds(), rRestore.PeakMB)

	sec := func(r benchutil.Result) float64 { return r.Wall.Seconds() }
	b.ReportMetric(float64(fi.Size())/1e6, "night-MB")
	b.ReportMetric(float64(fStored)/1e6, "folder-new-MB")
	b.ReportMetric(float64(sStored)/1e6, "s3-new-MB")
	b.ReportMetric(sec(fIngest), "folder-ingest-s")
	b.ReportMetric(sec(fRestore), "folder-restore-s")
	b.ReportMetric(sec(sIngest), "s3-ingest-s")
	b.ReportMetric(sec(sRestore), "s3-restore-s")
	b.ReportMetric(sec(rBackup), "restic-s3-backup-s")
	b.ReportMetric(sec(rRestore), "restic-s3-restore-s")
	b.ReportMetric(sec(sIngest)/sec(fIngest), "s3/folder-ingest")
	b.ReportMetric(sec(sRestore)/sec(fRestore), "s3/folder-restore")
	b.ReportMetric(sec(sIngest)/sec(rBackup), "larder/restic-s3-ingest")
	b.ReportMetric(sec(sRestore)/sec(rRestore), "larder/restic-s3-restore")
	b.ReportMetric(fIngest.PeakMB, "folder-ingest-RSS-MiB")
	b.ReportMetric(fRestore.PeakMB, "folder-restore-RSS-MiB")
	b.ReportMetric(sIngest.PeakMB, "s3-ingest-RSS-MiB")
	b.ReportMetric(sRestore.PeakMB, "s3-restore-RSS-MiB")
	b.ReportMetric(rBackup.PeakMB, "restic-s3-backup-RSS-MiB")
	b.ReportMetric(rRestore.PeakMB, "restic-s3-restore-RSS-MiB")
}

func fileSHA256(b *testing.B, path string) string {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
