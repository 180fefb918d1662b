package recompress

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestExport(t *testing.T) {
	cases := []struct {
		folder string
		want   []string
	}{
		{"classic-gzip1", []string{"backup.tar", "dump.sql"}},
		{"dumponly", []string{"backup.sql"}},
		{"v15", []string{"backup.tar"}},
	}
	for _, tc := range cases {
		data := committedFixture(t, tc.folder)
		name := "backup.tar.gz"
		if tc.folder == "dumponly" {
			name = "backup.sql.gz"
		}
		res, sink := roundTrip(t, tc.folder, data)
		dir := t.TempDir()
		files, err := Export(context.Background(), res.Recipe, sink.open, dir, name)
		if err != nil {
			t.Fatalf("%s: %v", tc.folder, err)
		}
		slices.Sort(files)
		if !slices.Equal(files, tc.want) {
			t.Errorf("%s: exported %v, want %v", tc.folder, files, tc.want)
		}
		// The exported outer layer is exactly what gzip -d gives.
		got := mustRead(t, filepath.Join(dir, files[0]))
		if !bytes.Equal(got, gunzip(t, data)) {
			t.Errorf("%s: %s is not the gunzipped backup", tc.folder, files[0])
		}
		if tc.folder == "classic-gzip1" {
			// A person can open it with tar, and dump.sql is plain text.
			if out, err := exec.Command("tar", "-tf", filepath.Join(dir, "backup.tar")).CombinedOutput(); err != nil {
				t.Errorf("tar -tf backup.tar: %v: %s", err, out)
			}
			sql := mustRead(t, filepath.Join(dir, "dump.sql"))
			if !bytes.HasPrefix(sql, sqlMagic) {
				t.Errorf("dump.sql does not start like a pg_dump")
			}
		}
	}
	// The 2026 format: the tar itself and every table's data file.
	res, sink := roundTrip(t, "2026", committedFixture(t, "2026"))
	dir := t.TempDir()
	files, err := Export(context.Background(), res.Recipe, sink.open, dir, "site-v3.5.0.tar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 || files[0] != "site-v3.5.0.tar" || !slices.Contains(files, "db/3489.dat") {
		t.Errorf("2026 export: %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, "db", "3489.dat")); err != nil {
		t.Error(err)
	}
}
