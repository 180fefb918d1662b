package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// jsonField is one documented field of a --json line.
type jsonField struct {
	kind     string // string, number, boolean, time, object, array
	optional bool
}

// jsonDoc reads docs/JSON.md: for each message type (and, for summary,
// each action) its fields, from the table under its heading:
//
//	### `ingest`                  or    ### `summary` of `ingest`
//	| field | type | meaning |
//	| `file` | string | ... |    (type "string, optional" for fields that may be absent)
func jsonDoc(t *testing.T) (map[string]map[string]jsonField, int) {
	t.Helper()
	f, err := os.Open("../../docs/JSON.md")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	heading := regexp.MustCompile("^### `([a-z_]+)`(?: of `([a-z_]+)`)?$")
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\| (string|number|boolean|time|object|array)(, optional)? \\|")
	version := regexp.MustCompile("^JSON output version: ([0-9]+)$")
	doc := map[string]map[string]jsonField{}
	cur, v := "", 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := version.FindStringSubmatch(line); m != nil {
			_, _ = fmt.Sscan(m[1], &v)
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			cur = m[1]
			if m[2] != "" {
				cur += " of " + m[2]
			}
			if doc[cur] != nil {
				t.Fatalf("docs/JSON.md: %s documented twice", cur)
			}
			doc[cur] = map[string]jsonField{}
			continue
		}
		if strings.HasPrefix(line, "## ") {
			cur = ""
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != "" {
			doc[cur][m[1]] = jsonField{kind: m[2], optional: m[3] != ""}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return doc, v
}

// kindOf is a decoded JSON value's documented type.
func kindOf(v any) string {
	switch x := v.(type) {
	case string:
		if _, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return "time"
		}
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "null"
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkKeys fails for a key, at any depth, that is not snake_case.
func checkKeys(t *testing.T, where string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", where, k)
			}
			checkKeys(t, where+"."+k, e)
		}
	case []any:
		for _, e := range x {
			checkKeys(t, where, e)
		}
	}
}

// jsonSession runs every command that has --json output on one repository
// and returns their lines, each with the command that printed it.
func jsonSession(t *testing.T) (lines []map[string]any, from []string) {
	t.Helper()
	work := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "a master passphrase for the JSON test\n")
	apw := write("apw", "an audit passphrase for the JSON test\n")
	apw2 := write("apw2", "another audit passphrase for the test\n")
	t.Setenv("LARDER_REPO", filepath.Join(work, "repo"))
	t.Setenv("LARDER_PASSWORD_FILE", pw)
	t.Setenv("LARDER_CACHE_DIR", filepath.Join(work, "cache"))
	t.Setenv("LARDER_KEY", "")
	wkey, akey := filepath.Join(work, "w.key"), filepath.Join(work, "a.key")
	fix := absFixtures(t)
	big := filepath.Join(work, "noise.bin")
	if err := os.WriteFile(big, bytes.Repeat([]byte("not a backup, "), 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	var wid string
	step := func(want int, args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"larder", "--json"}, args...), strings.NewReader(""), &stdout, &stderr)
		if code != want {
			t.Fatalf("larder --json %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, stderr.String())
		}
		for _, l := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
			if l == "" {
				continue
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("larder --json %s: a line that is no JSON object: %q", strings.Join(args, " "), l)
			}
			if v["message_type"] == "key_created" && v["role"] == "write" {
				wid, _ = v["id"].(string)
			}
			lines = append(lines, v)
			from = append(from, args[0])
		}
	}
	step(0, "init")
	step(0, "key", "new-write", "--no-passphrase", "--name", "forum", "--out", wkey)
	step(0, "key", "new-audit", "--new-password-file", apw, "--out", akey)
	step(0, "key", "list")
	step(exitPartial, "-k", wkey, "ingest", "--site", "forum", filepath.Join(fix, "dumponly"), big, filepath.Join(work, "nosuch.tar.gz"))
	step(0, "-k", wkey, "ingest", "--site", "forum", filepath.Join(fix, "dumponly"))
	// A junk object in snapshots/: listings warn and go on.
	junk := []byte("junk")
	sum := fmt.Sprintf("%x", sha256.Sum256(junk))
	if err := os.WriteFile(filepath.Join(work, "repo", "snapshots", sum), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	step(0, "snapshots")
	step(0, "snapshots", "latest")
	step(0, "status")
	step(0, "restore", "latest", "-o", filepath.Join(work, "back"))
	step(0, "restore", "latest", "--canonical", filepath.Join(work, "canon"))
	step(0, "drill", "--latest")
	step(exitVerify, "check") // the junk object is a problem
	step(exitVerify, "check", "--read-data", "all")
	step(0, "-k", akey, "--password-file", apw, "key", "passwd", "--new-password-file", apw2)
	step(exitVerify, "-k", akey, "--password-file", apw2, "audit")
	step(0, "stats")
	if err := os.Remove(filepath.Join(work, "repo", "snapshots", sum)); err != nil {
		t.Fatal(err)
	}
	step(0, "forget", "--keep-last", "1", "-n")
	step(0, "forget", "--keep-last", "1")
	step(0, "prune", "--grace", "0s")
	step(0, "copy", "--to", filepath.Join(work, "copy"))
	step(0, "repair", "index")
	step(0, "unlock")
	step(0, "key", "revoke", wid)
	step(0, "version")
	return lines, from
}

// TestJSONContract: every line every command prints with --json is an
// object of a message type docs/JSON.md documents, with the documented
// fields of the documented types (and every field the document requires),
// snake_case keys at every depth; and every documented type is printed by
// some command of the session, so the document holds nothing stale.
func TestJSONContract(t *testing.T) {
	doc, version := jsonDoc(t)
	if version != jsonVersion || len(doc) < 20 {
		t.Fatalf("docs/JSON.md: version %d (larder prints %d), %d message types read", version, jsonVersion, len(doc))
	}
	lines, from := jsonSession(t)
	seen := map[string]bool{}
	for i, v := range lines {
		where := fmt.Sprintf("larder %s line %v", from[i], v)
		checkKeys(t, where, v)
		mt, _ := v["message_type"].(string)
		name := mt
		if mt == "summary" {
			action, _ := v["action"].(string)
			name = "summary of " + action
		}
		fields, ok := doc[name]
		if !ok {
			t.Errorf("%s: message type %q is not in docs/JSON.md", where, name)
			continue
		}
		seen[name] = true
		for k, val := range v {
			f, ok := fields[k]
			if !ok {
				t.Errorf("%s: field %q of %s is not in docs/JSON.md", where, k, name)
				continue
			}
			got := kindOf(val)
			if got != f.kind && !(f.kind == "string" && got == "time") && !(got == "null" && f.optional) {
				t.Errorf("%s: field %q is %s, docs/JSON.md says %s", where, k, got, f.kind)
			}
		}
		for k, f := range fields {
			if _, ok := v[k]; !ok && !f.optional {
				t.Errorf("%s: field %q (required by docs/JSON.md) is missing", where, k)
			}
		}
	}
	var missing []string
	for name := range doc {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented in docs/JSON.md but printed by no command of the session: %s", strings.Join(missing, ", "))
	}
}
