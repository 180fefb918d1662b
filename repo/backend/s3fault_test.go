package backend_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/internal/faultproxy"
	"github.com/larder/larder/internal/s3test"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/backend/backendtest"
)

// TestS3Stalls: through a proxy that stalls every connection at some
// point (it stops forwarding one way and holds the connection open), each
// operation either succeeds or fails within the stall timeout with an
// error that says so and that Retry retries; none waits for ever. Each
// kind of operation is stalled at least once.
func TestS3Stalls(t *testing.T) {
	srv := s3test.New(t)
	ctx := context.Background()
	direct, err := backend.OpenS3(srv.Config("stall", false))
	if err != nil {
		t.Fatal(err)
	}
	big := backendtest.Data(1, 300<<10)
	bigH := backend.Handle{Type: backend.TypeData, Name: backendtest.Name(big)}
	if err := direct.Save(ctx, bigH, backend.Bytes(big)); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		b := backendtest.Data(uint64(100+i), 10)
		if err := direct.Save(ctx, backend.Handle{Type: backend.TypeData, Name: backendtest.Name(b)}, backend.Bytes(b)); err != nil {
			t.Fatal(err)
		}
	}
	px, err := faultproxy.New(srv.Endpoint, faultproxy.Config{Seed: 2, StallRate: 1, DropWithin: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	cfg := srv.Config("stall", false)
	cfg.Endpoint = px.Addr()
	cfg.PartSize = 5 << 20
	cfg.StallTimeout = 100 * time.Millisecond
	be, err := backend.OpenS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	multi := backendtest.Data(2, 6<<20)
	n := 0
	ops := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"stat", func(ctx context.Context) error {
			fi, err := be.Stat(ctx, bigH)
			if err == nil && fi.Size != int64(len(big)) {
				t.Fatalf("stat: size %d", fi.Size)
			}
			return err
		}},
		{"list", func(ctx context.Context) error {
			listed := 0
			err := be.List(ctx, backend.TypeData, func(backend.FileInfo) error { listed++; return nil })
			if err == nil && listed != 41 {
				t.Fatalf("list: %d objects, want 41", listed)
			}
			return err
		}},
		{"load", func(ctx context.Context) error {
			var got []byte
			err := be.Load(ctx, bigH, 0, 0, func(r io.Reader) error {
				var err error
				got, err = io.ReadAll(r)
				return err
			})
			if err == nil && !bytes.Equal(got, big) {
				t.Fatal("load: other bytes")
			}
			return err
		}},
		{"save", func(ctx context.Context) error {
			n++
			b := backendtest.Data(uint64(1000+n), 200<<10)
			return be.Save(ctx, backend.Handle{Type: backend.TypeIndex, Name: backendtest.Name(b)}, backend.Bytes(b))
		}},
		{"save multipart", func(ctx context.Context) error {
			err := be.Save(ctx, backend.Handle{Type: backend.TypeData, Name: backendtest.Name(multi)}, backend.Bytes(multi))
			if errors.Is(err, backend.ErrExists) {
				err = nil
			}
			return err
		}},
		{"remove", func(ctx context.Context) error {
			n++
			b := backendtest.Data(uint64(1000+n), 10)
			h := backend.Handle{Type: backend.TypeLock, Name: backendtest.Name(b)}
			if err := direct.Save(ctx, h, backend.Bytes(b)); err != nil {
				t.Fatal(err)
			}
			return be.Remove(ctx, h)
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			stalled := 0
			for try := 0; try < 40 && stalled < 3; try++ {
				// Not a limit on how long an operation takes: only what
				// turns a hang into a failure (the stall timeout is 100 ms).
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := op.fn(ctx)
				cancel()
				switch {
				case err == nil:
				case errors.Is(err, context.DeadlineExceeded):
					t.Fatalf("%s hung on a stalled connection (%v)", op.name, err)
				case backend.IsPermanent(err):
					t.Fatalf("%s on a stalled connection failed for good: %v", op.name, err)
				case !strings.Contains(err.Error(), "made no progress"):
					t.Fatalf("%s on a stalled connection: %v, want it to say it made no progress", op.name, err)
				default:
					stalled++
				}
			}
			if stalled == 0 {
				t.Fatalf("no %s stalled in 40 tries (%+v)", op.name, px.Stats())
			}
		})
	}
	if st := px.Stats(); st.Stalls == 0 {
		t.Fatalf("the proxy stalled nothing: %+v", st)
	}
}

// TestS3RetryThroughDrops: with Retry, saves and loads through a proxy
// that cuts a third of the connections all succeed, and what is stored is
// whole.
func TestS3RetryThroughDrops(t *testing.T) {
	srv := s3test.New(t)
	ctx := context.Background()
	px, err := faultproxy.New(srv.Endpoint, faultproxy.Config{Seed: 3, DropRate: 0.33, DropWithin: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	cfg := srv.Config("drops", true)
	cfg.Endpoint = px.Addr()
	cfg.PartSize = 5 << 20
	s3, err := backend.OpenS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	be := backend.Retry(s3, backend.RetryPolicy{Attempts: 10, Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond})
	direct, err := backend.OpenS3(srv.Config("drops", false))
	if err != nil {
		t.Fatal(err)
	}
	var saved [][]byte
	for i, size := range []int{0, 1, 100 << 10, 1 << 20, 6 << 20, 200 << 10, 2 << 20} {
		b := backendtest.Data(uint64(i), size)
		h := backend.Handle{Type: backend.TypeData, Name: backendtest.Name(b)}
		if err := be.Save(ctx, h, backend.Bytes(b)); err != nil {
			t.Fatalf("save %d bytes: %v", size, err)
		}
		saved = append(saved, b)
	}
	for _, b := range saved {
		h := backend.Handle{Type: backend.TypeData, Name: backendtest.Name(b)}
		for _, via := range []backend.Backend{be, direct} {
			got, err := backend.ReadAll(ctx, via, h, 16<<20)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s (%d bytes) through %s: %v, %d bytes back", h, len(b), via.Location(), err, len(got))
			}
		}
		var got bytes.Buffer
		if err := be.Load(ctx, h, 7, 0, func(r io.Reader) error { got.Reset(); _, err := got.ReadFrom(r); return err }); err != nil {
			t.Fatal(err)
		}
		if len(b) > 7 && !bytes.Equal(got.Bytes(), b[7:]) {
			t.Fatalf("%s from byte 7: other bytes", h)
		}
	}
	if st := px.Stats(); st.Drops == 0 {
		t.Fatalf("the proxy cut nothing: %+v", st)
	}
}
