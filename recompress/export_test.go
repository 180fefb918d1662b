package recompress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
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
		files, err := Export(context.Background(), res.Recipe, sink.open, dir, name, ExportOptions{})
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
	files, err := Export(context.Background(), res.Recipe, sink.open, dir, "site-v3.5.0.tar", ExportOptions{})
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

// modes lists every file and folder under dir (not dir) with its mode.
func modes(t *testing.T, dir string) map[string]os.FileMode {
	t.Helper()
	m := map[string]os.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = fi.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExportModes: what an export writes holds the forum's data (e-mail
// addresses, password hashes): files are mode 0600 and the folders it
// makes 0700, whatever the umask lets through.
func TestExportModes(t *testing.T) {
	res, sink := roundTrip(t, "2026", committedFixture(t, "2026"))
	dir := filepath.Join(t.TempDir(), "new", "out")
	files, err := Export(context.Background(), res.Recipe, sink.open, dir, "site-v3.5.0.tar", ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a folder of mode 0700", d, fi.Mode(), err)
		}
	}
	got := modes(t, dir)
	if len(got) != len(files)+1 { // and db/
		t.Errorf("%d files and folders, want the %d files and db/: %v", len(got), len(files), got)
	}
	for p, m := range got {
		want := os.FileMode(0o600)
		if p == "db" {
			want = os.ModeDir | 0o700
		}
		if m != want {
			t.Errorf("%s: mode %v, want %v", p, m, want)
		}
	}
}

// TestExportOverwrite: an export refuses to replace a file (before it
// writes anything), and replaces it with Overwrite: the new file has the
// export's content and mode 0600. Neither leaves a temporary file.
func TestExportOverwrite(t *testing.T) {
	data := committedFixture(t, "classic-gzip1")
	res, sink := roundTrip(t, "classic-gzip1", data)
	dir := t.TempDir()
	precious := []byte("the admin's own notes\n")
	if err := os.WriteFile(filepath.Join(dir, "dump.sql"), precious, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Export(context.Background(), res.Recipe, sink.open, dir, "backup.tar.gz", ExportOptions{})
	var ee *ExistError
	if !errors.As(err, &ee) || !errors.Is(err, fs.ErrExist) || ee.Path != filepath.Join(dir, "dump.sql") {
		t.Fatalf("export over dump.sql: %v, want an ExistError for it", err)
	}
	if got := modes(t, dir); len(got) != 1 {
		t.Errorf("a refused export wrote files: %v", got)
	}
	if b := mustRead(t, filepath.Join(dir, "dump.sql")); !bytes.Equal(b, precious) {
		t.Errorf("a refused export changed dump.sql")
	}
	files, err := Export(context.Background(), res.Recipe, sink.open, dir, "backup.tar.gz", ExportOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if !slices.Equal(files, []string{"backup.tar", "dump.sql"}) {
		t.Errorf("exported %v", files)
	}
	got := modes(t, dir)
	if len(got) != 2 || got["dump.sql"] != 0o600 || got["backup.tar"] != 0o600 {
		t.Errorf("after the export with Overwrite: %v", got)
	}
	if b := mustRead(t, filepath.Join(dir, "backup.tar")); !bytes.Equal(b, gunzip(t, data)) {
		t.Errorf("backup.tar is not the gunzipped backup")
	}
	if b := mustRead(t, filepath.Join(dir, "dump.sql")); !bytes.HasPrefix(b, sqlMagic) {
		t.Errorf("dump.sql was not replaced by the dump")
	}
}

// TestExportFailureLeavesNothing: an export that fails half-way (a stream
// that cannot be read) leaves neither its files nor temporary ones.
func TestExportFailureLeavesNothing(t *testing.T) {
	res, sink := roundTrip(t, "classic-gzip1", committedFixture(t, "classic-gzip1"))
	dir := t.TempDir()
	calls := 0
	failing := func(i int, k Kind) (io.Reader, error) {
		if calls++; calls > 1 {
			return nil, errors.New("the repository went away")
		}
		return sink.open(i, k)
	}
	if _, err := Export(context.Background(), res.Recipe, failing, dir, "backup.tar.gz", ExportOptions{}); err == nil {
		t.Fatal("the export did not fail")
	}
	if got := modes(t, dir); len(got) != 0 {
		t.Errorf("a failed export left %v", got)
	}
}
