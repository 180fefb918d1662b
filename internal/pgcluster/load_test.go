package pgcluster

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeGzip writes data gzip-compressed to a file in dir and returns its
// path; with cut, the compressed stream is cut short (a damaged dump).
func writeGzip(t *testing.T, dir, name string, data []byte, cut bool) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if cut {
		out = out[:len(out)/2]
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadSQLGzipFailures checks that a damaged gzip dump fails the load
// (psql alone would commit what it read), and that a dump psql stops
// reading early (an SQL error) fails at once instead of leaving gzip
// blocked on a full pipe.
func TestLoadSQLGzipFailures(t *testing.T) {
	needPostgres(t)
	c := startCluster(t, Options{Dir: reachableTempDir(t)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, "load"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	var script strings.Builder
	script.WriteString("CREATE TABLE t (n integer, s text);\nCOPY t (n, s) FROM stdin;\n")
	for i := 0; i < 100000; i++ {
		script.WriteString("1\tsome text to make the rows longer than a few bytes each\n")
	}
	script.WriteString("\\.\n")
	cut := writeGzip(t, dir, "cut.sql.gz", []byte(script.String()), true)
	if err := c.loadSQL(ctx, "load", cut, true); err == nil || !strings.Contains(err.Error(), "gzip -dc") {
		t.Errorf("loading a cut gzip dump: %v, want gzip's error", err)
	}

	bad := writeGzip(t, dir, "bad.sql.gz", []byte("SELECT no_such_function();\n"+strings.Repeat("-- padding, more than a pipe holds\n", 1<<18)), false)
	start := time.Now()
	err := c.loadSQL(ctx, "load", bad, true)
	if err == nil || !strings.Contains(err.Error(), "no_such_function") {
		t.Errorf("loading a dump with an SQL error: %v, want psql's error", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the failed load took %v", d)
	}
}
