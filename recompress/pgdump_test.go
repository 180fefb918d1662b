package recompress

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/larder/larder/internal/testenv"

	"github.com/larder/larder/internal/fixture"
)

// TestRealPgDumpLevels: dumps made by the real pg_dump at every
// --compress level (0 is plain SQL) and real classic backups at outer gzip
// -1, -5, -9 and --rsyncable round-trip exactly, every layer rebuilt by an
// engine.
func TestRealPgDumpLevels(t *testing.T) {
	testenv.NeedPostgres(t)
	ctx := context.Background()
	opts := fixture.Small()
	opts.Dir = filepath.Join(t.TempDir(), "work")
	s, err := fixture.NewSeries(ctx, opts)
	if err != nil {
		t.Fatalf("starting the fixture builder (needs PostgreSQL): %v", err)
	}
	defer s.Close()
	for _, level := range []int{fixture.PlainDump, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(level))
		p, err := s.WriteDumpOnly(ctx, dir, fixture.DumpOnlyOptions{DumpCompress: level})
		if err != nil {
			t.Fatal(err)
		}
		res, _ := roundTrip(t, fmt.Sprintf("pg_dump --compress=%d", max(level, 0)), mustRead(t, p))
		if !res.Summary.Exact || len(res.Summary.Tables) == 0 {
			t.Errorf("pg_dump --compress=%d: exact=%v, %d tables", level, res.Summary.Exact, len(res.Summary.Tables))
		}
	}
	for _, o := range []fixture.ClassicOptions{{OuterLevel: 1}, {OuterLevel: 5}, {OuterLevel: 9}, {OuterLevel: 6, Rsyncable: true}} {
		p, err := s.WriteClassic(ctx, filepath.Join(t.TempDir(), "c"), o)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := roundTrip(t, fmt.Sprintf("classic %+v", o), mustRead(t, p))
		if !res.Summary.Exact {
			t.Errorf("classic %+v: not exact: %+v", o, res.Summary.Layers)
		}
	}
}
