package recompress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Variants of the committed fixtures, made with the real tools: GNU gzip
// at other levels and --rsyncable, pigz, Python's gzip module (zlib), gzip
// headers with every optional field, multi-member files, trailing bytes,
// and damaged copies.

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture returns a committed fixture by folder.
func committedFixture(t testing.TB, folder string) []byte {
	t.Helper()
	for _, f := range committed(t) {
		if filepath.Base(filepath.Dir(f)) == folder {
			return mustRead(t, f)
		}
	}
	t.Fatalf("no committed fixture in %s", folder)
	return nil
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run feeds data to a command through a regular file (as gzip reads
// backups) and returns its output; the tool must exist.
func run(t testing.TB, data []byte, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed for this test (.ci/run installs it): %v", name, err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "backup.tar")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(name, append(args, in)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.Bytes()
}

// python runs a python3 program with data on stdin.
func python(t testing.TB, prog string, data []byte) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("python3", "-c", prog)
	cmd.Stdin = bytes.NewReader(data)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3: %v: %s", err, errb.String())
	}
	return out.Bytes()
}

// pyGzip writes a gzip member with zlib at level (and strategy), with the
// header fields given, as Python's zlib module makes it.
func pyGzip(t testing.TB, data []byte, level int, fields string) []byte {
	t.Helper()
	prog := fmt.Sprintf(`
import sys, zlib, struct
data = sys.stdin.buffer.read()
fields = %q
flg = 0
extra = b''
if 'x' in fields: flg |= 4; extra = struct.pack('<H', 6) + b'LD\x02\x00hi'
if 'n' in fields: flg |= 8
if 'c' in fields: flg |= 16
if 'h' in fields: flg |= 2
hdr = bytes([0x1f, 0x8b, 8, flg]) + struct.pack('<I', 1767000000) + bytes([0, 3]) + extra
if 'n' in fields: hdr += b'backup.tar\x00'
if 'c' in fields: hdr += b'nightly backup of forum\x00'
if 'h' in fields: hdr += struct.pack('<H', zlib.crc32(hdr) & 0xffff)
c = zlib.compressobj(%d, zlib.DEFLATED, -15, 8, 0)
body = c.compress(data) + c.flush()
sys.stdout.buffer.write(hdr + body + struct.pack('<II', zlib.crc32(data), len(data) & 0xffffffff))
`, fields, level)
	return python(t, prog, data)
}

func TestVariantsOuter(t *testing.T) {
	tarball := gunzip(t, committedFixture(t, "classic-gzip1"))
	half := len(tarball) / 2
	// pigz cuts its input into independent 128 KiB blocks: on a bigger
	// file that is not what any zlib call sequence makes.
	big := bytes.Repeat(tarball, 6)
	cases := []struct {
		name  string
		data  []byte
		exact bool
	}{
		{"gzip -1", run(t, tarball, "gzip", "-1", "-c"), true},
		{"gzip -5", run(t, tarball, "gzip", "-5", "-c"), true},
		{"gzip -9", run(t, tarball, "gzip", "-9", "-c"), true},
		{"gzip -6 --rsyncable", run(t, tarball, "gzip", "-6", "--rsyncable", "-c"), true},
		{"gzip -1 --rsyncable", run(t, tarball, "gzip", "-1", "--rsyncable", "-c"), true},
		{"pigz -6", run(t, big, "pigz", "-6", "-c"), false},
		{"python gzip module", python(t, `
import sys, gzip
sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read(), compresslevel=9, mtime=1767000000))`, tarball), true},
		{"zlib header fields", pyGzip(t, tarball, 6, "xnch"), true},
		{"zlib level 2 with name", pyGzip(t, tarball, 2, "n"), true},
		{"multi-member", append(run(t, tarball[:half], "gzip", "-5", "-c"), run(t, tarball[half:], "gzip", "-1", "-c")...), true},
		{"trailing zeros", append(run(t, tarball, "gzip", "-1", "-c"), make([]byte, 1024)...), false},
		{"trailing garbage", append(run(t, tarball, "gzip", "-1", "-c"), []byte("not gzip at all")...), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, sink := roundTrip(t, tc.name, tc.data)
			if res.Summary.Exact != tc.exact {
				t.Errorf("exact = %v, want %v (layers %+v)", res.Summary.Exact, tc.exact, res.Summary.Layers)
			}
			if tc.exact && len(sink.streams) < 2 {
				t.Errorf("expected the tar and the SQL streams, got %d streams", len(sink.streams))
			}
			for _, w := range res.Warnings {
				t.Errorf("unexpected warning: %v", w)
			}
		})
	}
}

// dumpSQL returns the plain SQL of the committed dump-only fixture.
func dumpSQL(t testing.TB) []byte { return gunzip(t, committedFixture(t, "dumponly")) }

func TestVariantsInnerLevels(t *testing.T) {
	sql := dumpSQL(t)
	var first []byte
	for level := 0; level <= 9; level++ {
		// pg_dump's path: zlib's gzip wrapper with no name and mtime 0.
		member := python(t, fmt.Sprintf(`
import sys, zlib
c = zlib.compressobj(%d, zlib.DEFLATED, 31, 8, 0)
d = sys.stdin.buffer.read()
out = b''
for i in range(0, len(d), 4096):
    out += c.compress(d[i:i+4096])
sys.stdout.buffer.write(out + c.flush())`, level), sql)
		if !bytes.HasPrefix(member, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}) {
			t.Fatalf("level %d: unexpected header % x", level, member[:10])
		}
		res, sink := roundTrip(t, fmt.Sprintf("dump level %d", level), member)
		if !res.Summary.Exact {
			t.Errorf("level %d: not exact: %+v", level, res.Summary.Layers)
		}
		sqlStream := sink.streams[0].Bytes()
		if first == nil {
			first = sqlStream
		} else if !bytes.Equal(first, sqlStream) {
			t.Errorf("level %d: the SQL stream differs from level 0's", level)
		}
		if len(res.Summary.Tables) == 0 {
			t.Errorf("level %d: no tables in the summary", level)
		}
	}
	if !bytes.Equal(first, sql) {
		t.Error("the SQL stream is not the dump's text")
	}
}

// TestCanonicalAcrossOuterLevels: the same backup gzipped at any level
// gives the same canonical streams.
func TestCanonicalAcrossOuterLevels(t *testing.T) {
	tarball := gunzip(t, committedFixture(t, "classic-gzip5"))
	var ref [][]byte
	for _, level := range []string{"-1", "-3", "-6", "-9"} {
		_, sink := roundTrip(t, "gzip "+level, run(t, tarball, "gzip", level, "-c"))
		var got [][]byte
		for _, s := range sink.streams {
			got = append(got, s.Bytes())
		}
		if ref == nil {
			ref = got
			continue
		}
		if len(got) != len(ref) {
			t.Fatalf("gzip %s: %d streams, not %d", level, len(got), len(ref))
		}
		for i := range got {
			if !bytes.Equal(got[i], ref[i]) {
				t.Errorf("gzip %s: stream %d differs", level, i)
			}
		}
	}
}

func TestDamaged(t *testing.T) {
	good := committedFixture(t, "classic-gzip1")
	mid := len(good) / 2
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x55
		return c
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-8] ^= 1
	tarball := gunzip(t, good)
	badTar := bytes.Clone(tarball)
	// Damage the header of the second member (after dump.sql.gz).
	hdr := bytes.Index(badTar, []byte("uploads/default/"))
	badTar[hdr+2] ^= 0x20
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"corrupt deflate", flip(good, mid), "member 1"},
		{"bad CRC", badCRC, "CRC-32 mismatch"},
		{"truncated", good[:mid], "truncated"},
		{"truncated trailer", good[:len(good)-3], "trailer truncated"},
		{"tar checksum", run(t, badTar, "gzip", "-1", "-c"), "checksum"},
		{"inner member corrupt", run(t, flip(tarball, 600+1000), "gzip", "-1", "-c"), "dump.sql.gz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := roundTrip(t, "backup.tar.gz", tc.data)
			if len(res.Warnings) == 0 {
				t.Fatal("no warning for damaged input")
			}
			msg := res.Warnings[0].Error()
			if !strings.HasPrefix(msg, "backup.tar.gz: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("warning %q does not name the file and %q", msg, tc.want)
			}
			t.Log(msg)
		})
	}
}

// TestTruncatedPrefixes: every prefix of a backup (here on a stride, and
// every one of the first bytes) unpacks to an exact rebuild, flagged as
// damaged, never a panic or an error.
func TestTruncatedPrefixes(t *testing.T) {
	for _, folder := range []string{"classic-gzip1", "2026", "dumponly"} {
		data := committedFixture(t, folder)
		step := max(1, len(data)/300)
		for n := 0; n < len(data); n++ {
			if n > 600 && n%step != 0 {
				continue
			}
			res, _ := roundTrip(t, fmt.Sprintf("%s[:%d]", folder, n), data[:n])
			if n >= 3 && len(res.Warnings) == 0 && folder != "2026" {
				t.Fatalf("%s[:%d]: a truncated backup gave no warning", folder, n)
			}
		}
	}
}

func TestPlainAndEmpty(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x1f}},
		{"gzip magic only", []byte{0x1f, 0x8b, 8}},
		{"plain text", []byte("hello, forum\n")},
		{"json", []byte(`{"realm": 1}`)},
		{"sql", dumpSQL(t)},
	} {
		res, _ := roundTrip(t, tc.name, tc.data)
		t.Logf("%s: %d warnings, exact=%v", tc.name, len(res.Warnings), res.Summary.Exact)
	}
}
