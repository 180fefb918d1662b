package larder

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/larder/larder/internal/fixture"
	"github.com/larder/larder/repo"
)

// TestEndToEndSeries is the story of the issue: the fixture builder makes
// five nightly Discourse classic backups from a real PostgreSQL; a write
// key ingests them; the master key restores every one byte-identical; a
// drill with PostgreSQL loads the newest and its row counts match; the
// audit key audits clean; after forget and prune the kept snapshots still
// restore exactly; a second run of the same ingest stores nothing new.
func TestEndToEndSeries(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	opts := fixture.Small()
	files, err := fixture.ClassicSeries(ctx, filepath.Join(t.TempDir(), "series"), opts, 5, fixture.ClassicOptions{OuterLevel: 1})
	if err != nil {
		t.Fatalf("building the series (needs PostgreSQL): %v", err)
	}
	tr := newTestRepo(t)
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	a := tr.open(t, tr.audit)

	var ids []repo.ID
	var newBytes []uint64
	var stats []repo.IngestStats
	for _, f := range files {
		res, err := Ingest(ctx, w, f, IngestOptions{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !res.Summary.Exact || len(res.Warnings) > 0 {
			t.Fatalf("%s: not exact or damaged: %+v %v", f, res.Summary.Layers, res.Warnings)
		}
		ids = append(ids, res.Snapshot)
		newBytes = append(newBytes, res.Stats.NewStored)
		stats = append(stats, res.Stats)
	}
	t.Logf("new bytes per night: %v", newBytes)
	// Every later night finds a good part of its canonical bytes already
	// stored. (The small preset edits rows all over its tables every
	// night, so a part is all it can be; the 10-night benchmark measures
	// the real ratio.)
	for i := 1; i < len(stats); i++ {
		total := stats[i].DedupBytes + stats[i].NewRaw
		if stats[i].DedupBytes*100 < total*15 {
			t.Errorf("night %d: only %d of %d canonical bytes deduplicated", i+1, stats[i].DedupBytes, total)
		}
	}
	restoreAll := func(which []int) {
		t.Helper()
		for _, i := range which {
			snap, err := m.FindSnapshot(ctx, ids[i].String())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := Restore(ctx, m, snap, &out); err != nil {
				t.Fatalf("night %d: %v", i+1, err)
			}
			orig, _ := os.ReadFile(files[i])
			if !bytes.Equal(out.Bytes(), orig) {
				t.Fatalf("night %d: restored bytes differ", i+1)
			}
		}
	}
	restoreAll([]int{0, 1, 2, 3, 4})

	newest, err := m.FindSnapshot(ctx, ids[4].String())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Drill(ctx, m, newest, DrillOptions{Postgres: true, TempDir: drillTempDir(t)})
	if err != nil || !rec.OK || rec.Postgres == nil || len(rec.Postgres.Mismatches) > 0 {
		t.Fatalf("drill of the newest night: %v %+v", err, rec)
	}

	rep, err := a.Audit(ctx)
	if err != nil || !rep.OK() || rep.Snapshots != 5 || len(rep.Drills) != 1 {
		t.Fatalf("audit: %v ok=%v snapshots=%d drills=%d problems=%v", err, rep != nil && rep.OK(), rep.Snapshots, len(rep.Drills), rep.Problems)
	}

	// Keep the last two; prune twice (mark, then delete) with no grace.
	if _, err := m.Forget(ctx, repo.Policy{Last: 2}, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Prune(ctx, repo.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	restoreAll([]int{3, 4})
	if rep, err := a.Audit(ctx); err != nil || !rep.OK() {
		t.Fatalf("audit after prune: %v %v", err, rep.Problems)
	}

	// The same files again: nothing new.
	for _, f := range files[3:] {
		res, err := Ingest(ctx, w, f, IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Existing == "" {
			t.Errorf("%s: ingested again", f)
		}
	}
}

// TestIngestRandomFile: a file that is no backup at all is stored and
// restored exactly.
func TestIngestRandomFile(t *testing.T) {
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	m := tr.open(t, tr.master)
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "random.bin")
	os.WriteFile(p, data, 0o600)
	res, err := Ingest(ctx, w, p, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := m.FindSnapshot(ctx, res.Snapshot.String())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Restore(ctx, m, snap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("random file: %v", err)
	}
}
