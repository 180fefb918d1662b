// Package zulip checks an unpacked Zulip realm export the way Zulip's
// import (manage.py import) reads it, for restore drills: the files the
// import opens are there, every JSON file it parses parses, and every
// entry of a records.json (uploads, avatars, emoji, realm icons) names a
// file of the export, with its size.
//
// # Memory
//
// JSON is read as a stream: a file's top-level value is walked token by
// token down to the rows of its tables (a message, a user), and only one
// row is held at a time. A records.json is read one entry at a time.
package zulip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MaxProblems bounds [Report.Problems]; the last line counts the others.
const MaxProblems = 20

// required are the files Zulip's import opens without checking first.
var required = []string{"realm.json", "attachment.json", "messages-000001.json", "uploads/records.json", "avatars/records.json"}

// recordFolders hold a records.json each when present (emoji and realm
// icons are optional).
var recordFolders = []string{"uploads", "avatars", "emoji", "realm_icons"}

// messagesFile names the numbered message files.
var messagesFile = regexp.MustCompile(`^messages-([0-9]{6})\.json$`)

// Report is what [Check] found.
type Report struct {
	JSONFiles int // JSON files parsed
	Records   int // records.json entries whose file is present, with its size
	// Problems says what is wrong, one line each, at most MaxProblems.
	Problems []string
	more     int
}

func (r *Report) problem(format string, a ...any) {
	if len(r.Problems) < MaxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
		return
	}
	r.more++
}

// Root returns the export folder in dir: dir itself when it holds
// realm.json, or its only subfolder when that does (an export's tar holds
// one folder, zulip-export-XXXXXXXX). ok is false for anything else.
func Root(dir string) (root string, ok bool) {
	if isFile(filepath.Join(dir, "realm.json")) {
		return dir, true
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || !entries[0].IsDir() {
		return "", false
	}
	sub := filepath.Join(dir, entries[0].Name())
	return sub, isFile(filepath.Join(sub, "realm.json"))
}

// IsExportMember reports whether a tar member's name is an export's
// realm.json (at the top, or in the one folder below it), by which a drill
// knows a Zulip export before unpacking it.
func IsExportMember(name string) bool {
	name = strings.TrimPrefix(name, "./")
	dir, file := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	return file == "realm.json" && !strings.Contains(dir, "/")
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Check checks the export in root (see [Root]). What is wrong with the
// export goes in the report; the error is for a folder that cannot be read
// or a canceled ctx.
func Check(ctx context.Context, root string) (*Report, error) {
	rep := &Report{}
	for _, name := range required {
		if !isFile(filepath.Join(root, filepath.FromSlash(name))) {
			rep.problem("%s is missing (Zulip's import needs it)", name)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("zulip: %w", err)
	}
	var numbers []int
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		if g := messagesFile.FindStringSubmatch(e.Name()); g != nil {
			n, _ := strconv.Atoi(g[1])
			numbers = append(numbers, n)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := checkJSONFile(filepath.Join(root, e.Name())); err != nil {
			rep.problem("%s: %v", e.Name(), err)
			continue
		}
		rep.JSONFiles++
	}
	checkNumbering(rep, numbers)
	for _, dir := range recordFolders {
		if err := checkRecords(ctx, rep, root, dir); err != nil {
			return nil, err
		}
	}
	if rep.more > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("and %d more problems", rep.more))
	}
	return rep, nil
}

// checkNumbering: the import reads messages-000001.json, -000002, ... and
// stops at the first missing number, so a gap loses every later file.
func checkNumbering(rep *Report, numbers []int) {
	sort.Ints(numbers)
	for i, n := range numbers {
		if n != i+1 {
			rep.problem("messages-%06d.json is missing: the import stops there and skips messages-%06d.json and later", i+1, n)
			return
		}
	}
}

// checkJSONFile parses one JSON file (a single value, nothing after it).
func checkJSONFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	return checkJSON(f)
}

// checkJSON parses one JSON value from r, with nothing after it. It walks
// tokens down to depth 2 (the rows of an export's tables) and decodes each
// row whole, so memory is bounded by the largest row.
func checkJSON(r io.Reader) error {
	dec := json.NewDecoder(r)
	if err := walk(dec, 0); err != nil {
		return jsonError(dec, err)
	}
	if tok, err := dec.Token(); err == nil {
		return fmt.Errorf("more after the JSON value, at byte %d (%v)", dec.InputOffset(), tok)
	} else if !errors.Is(err, io.EOF) {
		return jsonError(dec, err)
	}
	return nil
}

// rowDepth is where walk decodes values whole: the rows of the tables.
const rowDepth = 2

func walk(dec *json.Decoder, depth int) error {
	if depth >= rowDepth {
		var row json.RawMessage
		return dec.Decode(&row)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	for dec.More() {
		if delim == '{' {
			if _, err := dec.Token(); err != nil { // the key
				return err
			}
		}
		if err := walk(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// jsonError says where a JSON file is broken.
func jsonError(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("JSON ends early, at byte %d", dec.InputOffset())
	}
	return err
}
