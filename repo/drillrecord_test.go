package repo

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
)

// TestDrillRecordFormats: a format 1 record (as larder wrote them before
// the format field) still reads, and a format 2 record keeps every new
// field through signing, storage and the audit key's reading.
func TestDrillRecordFormats(t *testing.T) {
	ctx := context.Background()
	be, k := newRepo(t)
	m := open(t, be, k.master)
	snap := ID{1, 2, 3}
	old := json.RawMessage(`{"snapshot":"` + snap.String() + `","time":"2025-11-01T03:00:00Z","host":"old","ok":false,` +
		`"bytes":20000,"sha256_ok":true,"postgres":{"version":"","tables":0,"rows":0,` +
		`"mismatches":["the snapshot's summary lists no tables: no PostgreSQL dump was found at ingest"]}}`)
	b, err := m.signRecord(drillContext, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := saveContent(ctx, be, backend.TypeDrill, b); err != nil {
		t.Fatal(err)
	}
	recs := []*DrillRecord{
		{Format: DrillFormat, Snapshot: snap, Time: time.Date(2026, 1, 6, 3, 0, 0, 0, time.UTC), Host: "zulip", OK: true,
			Bytes: 114212, SHA256OK: true, NoDatabase: true, Zulip: &ZulipDrill{JSONFiles: 9, Records: 22}},
		{Format: DrillFormat, Snapshot: snap, Time: time.Date(2026, 1, 7, 3, 0, 0, 0, time.UTC), OK: true, Bytes: 95300, SHA256OK: true,
			Postgres: &PGDrill{Version: "postgres (PostgreSQL) 15.18", Tables: 13, Rows: 662},
			Exec:     &ExecDrill{Command: "psql -f migrate.sql", ExitStatus: 3}},
		{Format: DrillFormat, Snapshot: snap, Time: time.Date(2026, 1, 8, 3, 0, 0, 0, time.UTC), Bytes: 1, SHA256OK: true,
			Postgres: &PGDrill{Version: "postgres (PostgreSQL) 15.18"}, Error: "PostgreSQL 15.18: psql failed",
			Exec: &ExecDrill{Command: "sleep 100", ExitStatus: -1, Error: "signal: killed"}},
	}
	for _, rec := range recs {
		if _, err := m.RecordDrill(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	a := open(t, be, k.audit)
	got, problems, err := a.Drills(ctx)
	if err != nil || len(problems) > 0 || len(got) != 4 {
		t.Fatalf("%d drills, problems %v, err %v", len(got), problems, err)
	}
	first := got[0]
	if first.Format != 0 || first.Host != "old" || first.OK || first.Postgres == nil || len(first.Postgres.Mismatches) != 1 ||
		first.NoDatabase || first.Zulip != nil || first.Exec != nil {
		t.Errorf("the format 1 record reads as %+v", first)
	}
	for i, want := range recs {
		if !reflect.DeepEqual(got[i+1], want) {
			t.Errorf("record %d reads back as %+v, want %+v", i, got[i+1], want)
		}
	}
}
