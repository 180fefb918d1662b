package zulip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// record is what the check needs of a records.json entry.
type record struct {
	Path *string `json:"path"`
	Size *int64  `json:"size"` // absent for emoji
}

// checkRecords checks dir/records.json, when dir is there: every entry
// names a file in dir, of the size it says.
func checkRecords(ctx context.Context, rep *Report, root, dir string) error {
	name := dir + "/records.json"
	f, err := os.Open(filepath.Join(root, dir, "records.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // required ones are reported missing already
	}
	if err != nil {
		return fmt.Errorf("zulip: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	dec := json.NewDecoder(f)
	tok, err := dec.Token()
	if err != nil {
		rep.problem("%s: %v", name, jsonError(dec, err))
		return nil
	}
	if tok != json.Delim('[') {
		rep.problem("%s: not a JSON array", name)
		return nil
	}
	for i := 0; dec.More(); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			rep.problem("%s: %v", name, jsonError(dec, err))
			return nil
		}
		var rec record
		if err := json.Unmarshal(raw, &rec); err != nil || rec.Path == nil {
			rep.problem("%s: entry %d has no path", name, i+1)
			continue
		}
		if msg := checkRecordFile(filepath.Join(root, dir), rec); msg != "" {
			rep.problem("%s: %s", name, msg)
			continue
		}
		rep.Records++
	}
	if _, err := dec.Token(); err != nil {
		rep.problem("%s: %v", name, jsonError(dec, err))
		return nil
	}
	rep.JSONFiles++
	return nil
}

// checkRecordFile returns what is wrong with one entry's file, or "".
func checkRecordFile(dir string, rec record) string {
	p := *rec.Path
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Sprintf("entry path %q is not a plain relative path in the folder", p)
	}
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p + " is missing"
	case err != nil:
		return err.Error()
	case !fi.Mode().IsRegular():
		return p + " is not a regular file"
	case rec.Size != nil && fi.Size() != *rec.Size:
		return fmt.Sprintf("%s has %d bytes, its entry says %d", p, fi.Size(), *rec.Size)
	}
	return ""
}
