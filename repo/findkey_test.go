package repo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/larder/larder/repo/backend"
)

// TestFindKey: a key is found by any prefix of its ID from 4 hex digits
// on, in either case; a shorter one, one no key has, and one two keys
// share are refused, each saying so.
func TestFindKey(t *testing.T) {
	be, k := newRepo(t)
	r := open(t, be, k.master)
	ctx := context.Background()
	w := k.write.Record().ID.String()
	for _, p := range []string{w, w[:4], w[:9], strings.ToUpper(w[:12])} {
		rec, err := r.FindKey(ctx, p)
		if err != nil || rec.ID != k.write.Record().ID {
			t.Errorf("FindKey(%s): %v, %v", p, rec, err)
		}
	}
	if rec, err := r.FindKey(ctx, k.audit.Record().ID.String()[:6]); err != nil || rec.Name != "auditor" {
		t.Errorf("the audit key: %v, %v", rec, err)
	}
	if _, err := r.FindKey(ctx, w[:3]); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("3 digits: %v", err)
	}
	none := "0000"
	for strings.HasPrefix(w, none) || strings.HasPrefix(k.audit.Record().ID.String(), none) || strings.HasPrefix(k.master.ID.String(), none) {
		none = "1111"
	}
	if _, err := r.FindKey(ctx, none); !errors.Is(err, backend.ErrNotFound) || !strings.Contains(err.Error(), "no key "+none) {
		t.Errorf("no such key: %v", err)
	}
	// A key that shares 4 digits with a stored one: written until one
	// does (about 22000 tries).
	stored := map[string]bool{}
	for _, id := range []string{w, k.audit.Record().ID.String(), k.master.ID.String()} {
		stored[id[:4]] = true
	}
	for range 1 << 20 {
		wk, err := k.master.NewWriteKey("twin", r.now())
		if err != nil {
			t.Fatal(err)
		}
		id := wk.Record().ID.String()
		if !stored[id[:4]] {
			continue
		}
		if err := r.AddKey(ctx, wk.Record()); err != nil {
			t.Fatal(err)
		}
		if _, err := r.FindKey(ctx, id[:4]); err == nil || !strings.Contains(err.Error(), "is ambiguous (2 keys)") {
			t.Errorf("a shared prefix: %v", err)
		}
		if rec, err := r.FindKey(ctx, id); err != nil || rec.ID != wk.Record().ID {
			t.Errorf("the whole ID beside a shared prefix: %v, %v", rec, err)
		}
		return
	}
	t.Fatal("no key shared 4 digits with a stored one")
}
