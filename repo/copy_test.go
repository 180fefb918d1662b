package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
)

// TestCopyFolderToS3: a repository in a folder is copied to S3: an
// interrupted copy goes on where it stopped; the copy restores every
// snapshot, checks clean with every chunk read, audits clean, and forget
// there trusts the source's storage times (a signed times record), so no
// copied snapshot is taken for a back-dated one.
func TestCopyFolderToS3(t *testing.T) {
	ctx := context.Background()
	be, k := newRepo(t)
	// Nights made three days ago: claimed and stored then.
	w := open(t, be, k.write)
	past := time.Now().Add(-72 * time.Hour)
	w.now = func() time.Time { return past }
	var ids []ID
	var streams [][][]byte
	for n := 1; n <= 2; n++ {
		s := nightStreams(n)
		ids = append(ids, ingest(t, w, fmt.Sprintf("night-%d", n), s...))
		streams = append(streams, s)
	}
	for _, name := range listNames(t, be, backend.TypeSnapshot) {
		p, _ := be.Path(backend.Handle{Type: backend.TypeSnapshot, Name: name})
		env, err := parseEnvelope(mustReadFile(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, env.Claimed, env.Claimed); err != nil {
			t.Fatal(err)
		}
	}
	srv := sharedS3(t)
	s3, err := backend.OpenS3(srv.Config(fmt.Sprintf("copy-%d", s3Prefix.Add(1)), false))
	if err != nil {
		t.Fatal(err)
	}
	// The first try stops after a few objects.
	saves := 0
	stop := errors.New("connection lost")
	broken := backend.Fault(s3, 0, 1)
	broken.Hook = func(op string, h backend.Handle) error {
		if op == "save" {
			if saves++; saves > 5 {
				return backend.Permanent(stop)
			}
		}
		return nil
	}
	m := open(t, be, k.master)
	if _, err := m.CopyTo(ctx, broken); !errors.Is(err, stop) {
		t.Fatalf("the interrupted copy: %v", err)
	}
	if _, err := ReadConfig(ctx, s3); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("an interrupted copy left a repository: %v", err)
	}
	res, err := m.CopyTo(ctx, s3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept < 5 || res.Objects == 0 {
		t.Fatalf("the second copy did not go on from the first: %+v", res)
	}
	// The copy is the repository, in its new place.
	mc := open(t, s3, k.master)
	for i, id := range ids {
		s, err := mc.FindSnapshot(ctx, id.String())
		if err != nil {
			t.Fatal(err)
		}
		for j, ref := range s.Manifest.Streams {
			if got := readStream(t, mc, ref); !bytes.Equal(got, streams[i][j]) {
				t.Fatalf("the copy's snapshot %d stream %d differs", i, j)
			}
		}
	}
	mustCheck(t, mc, CheckOptions{ReadData: 1})
	mustAudit(t, open(t, s3, k.audit))
	suspicious := func(r *Repo) int {
		snaps, err := r.Snapshots(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range r.Plan(snaps, Policy{Daily: 7}) {
			for _, why := range d.Reasons {
				if strings.HasPrefix(why, "suspicious") {
					n++
				}
			}
		}
		return n
	}
	if n := suspicious(mc); n != 0 {
		t.Fatalf("%d copied snapshots are suspicious", n)
	}
	// Without the master's times record, their new storage time makes
	// them look back-dated: the record is what vouches for them.
	for _, name := range listNames(t, s3, backend.TypeTimes) {
		if err := s3.Remove(ctx, backend.Handle{Type: backend.TypeTimes, Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if n := suspicious(open(t, s3, k.master)); n != len(ids) {
		t.Fatalf("without the times record %d of %d copied snapshots are suspicious", n, len(ids))
	}
	// A copy again finds everything there (and records the times again).
	again, err := m.CopyTo(ctx, s3)
	if err != nil || again.Objects > 1 {
		t.Fatalf("copying again copied %d objects: %v", again.Objects, err)
	}
	if n := suspicious(open(t, s3, k.master)); n != 0 {
		t.Fatalf("%d copied snapshots are suspicious after copying again", n)
	}
}
