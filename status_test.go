package larder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Status per site (write-key thief): a backup whose name claims it was
// made in 2099 does not keep its site looking fresh for ever: a backup
// cannot have been made after it was stored, so status (and "latest")
// bound the claim by the storage's time.
func TestStatusBoundsClaimedTimes(t *testing.T) {
	tr := newTestRepo(t)
	ctx := context.Background()
	w := tr.open(t, tr.write)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "small", "dumponly", "discourse-2026-01-06-032511-v20251130140459.sql.gz"))
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "discourse-2026-01-06-032511-v20251130140459.sql.gz")
	future := filepath.Join(dir, "discourse-2099-01-01-000000-v20251130140459.sql.gz")
	for _, p := range []string{future, real} {
		// Different bytes, or the second is skipped as stored already.
		if err := os.WriteFile(p, append([]byte(nil), src...), 0o600); err != nil {
			t.Fatal(err)
		}
		src = append(src, 0) // trailing garbage: still ingested, exactly
		if _, err := Ingest(ctx, w, p, IngestOptions{Site: "forum"}); err != nil {
			t.Fatal(err)
		}
	}
	sites, _, err := Status(ctx, tr.open(t, tr.master))
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 1 || sites[0].Snapshots != 2 {
		t.Fatalf("sites %+v", sites)
	}
	st := sites[0]
	now := time.Now()
	if age := st.Age(now); age < 0 {
		t.Errorf("the site's age is %s: a claimed future backup time was believed", age)
	}
	if !st.Stale(now.Add(30*time.Hour), 26*time.Hour) {
		t.Error("30 hours on, the site is not stale: the 2099 claim keeps it fresh")
	}
	if got := st.Newest.Bounded(); got.After(now) {
		t.Errorf("the newest's time is %s, after now", got)
	}
}
