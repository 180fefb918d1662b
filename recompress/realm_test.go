package recompress

import (
	"os"
	"path/filepath"
	"testing"
)

// A Zulip export's summary names its realm: the site it belongs to.
func TestZulipRealmInSummary(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "small", "zulip", "*.tar.gz"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Zulip fixture: %v", err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	res, _ := roundTrip(t, files[0], data)
	if res.Summary.Realm != "discourse" {
		t.Errorf("realm %q, want the fixture's string_id %q", res.Summary.Realm, "discourse")
	}
	// A Discourse backup has no realm.
	classic, err := filepath.Glob(filepath.Join("..", "testdata", "small", "classic-gzip1", "*.tar.gz"))
	if err != nil || len(classic) == 0 {
		t.Fatalf("no classic fixture: %v", err)
	}
	data, err = os.ReadFile(classic[0])
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := roundTrip(t, classic[0], data); res.Summary.Realm != "" {
		t.Errorf("a Discourse backup got realm %q", res.Summary.Realm)
	}
}

// The watcher finds the realm however the bytes are split between writes,
// and gives up on values it cannot take as they are.
func TestRealmWatcherSplits(t *testing.T) {
	doc := []byte("{\n  \"zerver_realm\": [ {\"id\": 2, \"string_id\" :\n \"chat-team\", \"name\": \"x\"} ],\n \"string_id\": \"later\"}")
	for cut := 0; cut <= len(doc); cut++ {
		for cut2 := cut; cut2 <= len(doc); cut2 += 7 {
			w := &realmWatcher{}
			for _, part := range [][]byte{doc[:cut], doc[cut:cut2], doc[cut2:]} {
				if n, err := w.Write(part); n != len(part) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			if !w.found || w.id != "chat-team" {
				t.Fatalf("cuts %d,%d: found=%v id=%q", cut, cut2, w.found, w.id)
			}
		}
	}
	for _, bad := range []string{`{"string_id": 12}`, `{"string_id": "a\"b"}`, `{"string_id": "` + string(make([]byte, 70)) + `"}`, `{"id": 1}`} {
		w := &realmWatcher{}
		if _, err := w.Write([]byte(bad)); err != nil {
			t.Fatal(err)
		}
		if w.found {
			t.Errorf("%q: took %q as the realm", bad, w.id)
		}
	}
}
