package zulip

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// fixture is the committed Zulip export.
const fixture = "../../testdata/small/zulip/zulip-export-qub0z170.tar.gz"

// unpack extracts the fixture with GNU tar, as an operator restoring it
// would, and returns the export folder.
func unpack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", fixture, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	root, ok := Root(dir)
	if !ok || filepath.Base(root) != "zulip-export-qub0z170" {
		t.Fatalf("Root(%s) = %q, %v", dir, root, ok)
	}
	return root
}

func check(t *testing.T, root string) *Report {
	t.Helper()
	rep, err := Check(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCheckFixture(t *testing.T) {
	rep := check(t, unpack(t))
	// realm, attachment, 4 message files and 3 records.json; 9 uploads,
	// 12 avatar files, 2 emoji.
	if len(rep.Problems) > 0 || rep.JSONFiles != 9 || rep.Records != 23 {
		t.Fatalf("the fixture checks as %+v", rep)
	}
}

// TestCheckFindsDamage damages the export one way at a time.
func TestCheckFindsDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, root string)
		want   string
	}{
		{"missing upload", func(t *testing.T, root string) {
			rm(t, root, "uploads/2/1c/3fcf0e3f5a59f688637b8ee4/IMG_8543.jpeg")
		}, "uploads/records.json: 2/1c/3fcf0e3f5a59f688637b8ee4/IMG_8543.jpeg is missing"},
		{"short avatar", func(t *testing.T, root string) {
			write(t, root, "avatars/2/4271656a445663861baa34301e07c969985ac9b8.png", "tiny")
		}, "avatars/records.json: 2/4271656a445663861baa34301e07c969985ac9b8.png has 4 bytes, its entry says 2200"},
		{"truncated messages", func(t *testing.T, root string) {
			b := read(t, root, "messages-000002.json")
			write(t, root, "messages-000002.json", string(b[:len(b)/2]))
		}, "messages-000002.json: JSON ends early"},
		{"garbled realm", func(t *testing.T, root string) {
			b := read(t, root, "realm.json")
			write(t, root, "realm.json", strings.Replace(string(b), `"zerver_client"`, `"zerver_client" x`, 1))
		}, "realm.json: invalid JSON at byte "},
		{"message file gap", func(t *testing.T, root string) {
			rm(t, root, "messages-000002.json")
		}, "messages-000002.json is missing: the import stops there and skips messages-000003.json and later"},
		{"no realm", func(t *testing.T, root string) {
			rm(t, root, "realm.json")
		}, "realm.json is missing (Zulip's import needs it)"},
		{"no avatar records", func(t *testing.T, root string) {
			rm(t, root, "avatars/records.json")
		}, "avatars/records.json is missing"},
		{"escaping path", func(t *testing.T, root string) {
			write(t, root, "emoji/records.json", `[{"path": "../realm.json"}]`)
		}, `emoji/records.json: entry path "../realm.json" is not a plain relative path in the folder`},
		{"records not an array", func(t *testing.T, root string) {
			write(t, root, "emoji/records.json", `{"path": "x"}`)
		}, "emoji/records.json: not a JSON array"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := unpack(t)
			tc.damage(t, root)
			rep := check(t, root)
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], tc.want) {
				t.Fatalf("problems %q, want one saying %q", rep.Problems, tc.want)
			}
		})
	}
}

// TestCheckIgnoresUploadedJSON: a user's uploaded .json is content, not
// part of the export's format.
func TestCheckIgnoresUploadedJSON(t *testing.T) {
	root := unpack(t)
	write(t, root, "uploads/2/notes.json", "not json at all")
	if rep := check(t, root); len(rep.Problems) > 0 {
		t.Fatalf("an uploaded file was parsed: %q", rep.Problems)
	}
}

func TestCheckBoundsProblems(t *testing.T) {
	root := unpack(t)
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < MaxProblems+5; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"path": "gone/` + strings.Repeat("x", i+1) + `"}`)
	}
	b.WriteString("]")
	write(t, root, "emoji/records.json", b.String())
	rep := check(t, root)
	if len(rep.Problems) != MaxProblems+1 || rep.Problems[MaxProblems] != "and 5 more problems" {
		t.Fatalf("%d problems, last %q", len(rep.Problems), rep.Problems[len(rep.Problems)-1])
	}
}

func TestRootAndMember(t *testing.T) {
	if _, ok := Root(t.TempDir()); ok {
		t.Error("an empty folder is an export")
	}
	for name, want := range map[string]bool{
		"zulip-export-qub0z170/realm.json":         true,
		"./zulip-export-qub0z170/realm.json":       true,
		"realm.json":                               true,
		"zulip-export-qub0z170/uploads/realm.json": false,
		"zulip-export-qub0z170/realm.json.bak":     false,
		"zulip-export-qub0z170/":                   false,
		"discourse-2026-01-06-032511/dump.sql.gz":  false,
	} {
		if got := IsExportMember(name); got != want {
			t.Errorf("IsExportMember(%q) = %v", name, got)
		}
	}
}

var jsonSeeds = []string{
	`{}`, `[]`, `5`, `"s"`, ` {"a": [1, {"b": [2, 3]}, "x"], "c": null} `, `{"zerver_message": [{"id": 1}, {"id": 2}]}`,
	``, `{`, `{"a": [1, 2}`, `[1] [2]`, `{"a" 1}`, `[{"deep": [[[[1]]]]}]`, `tru`, `{"a": 1,}`, "[1]\n",
}

func TestCheckJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		err := checkJSON(iotest.OneByteReader(strings.NewReader(s)))
		if (err == nil) != json.Valid([]byte(s)) {
			t.Errorf("checkJSON(%q) = %v, json.Valid says %v", s, err, json.Valid([]byte(s)))
		}
	}
}

// FuzzCheckJSON: the streaming walk accepts exactly what json.Valid does.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSON(bytes.NewReader(b))
		if (err == nil) != json.Valid(b) {
			t.Fatalf("checkJSON(%q) = %v, json.Valid says %v", b, err, json.Valid(b))
		}
	})
}

func rm(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(name))); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, name, s string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(name)), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, root, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
