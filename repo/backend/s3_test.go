package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder/internal/s3test"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/backend/backendtest"
	"github.com/minio/minio-go/v7"
)

// TestS3 runs the conformance suite on a real S3 server (versitygw on
// loopback) with the master's credential, with small parts so that the
// largest object goes up as a multipart upload.
func TestS3(t *testing.T) {
	srv := s3test.New(t)
	n := 0
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		n++
		cfg := srv.Config(fmt.Sprintf("suite%d/repo", n), false)
		cfg.PartSize = 5 << 20
		be, err := backend.OpenS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return be
	}, backendtest.Options{ModTime: true, Large: 12 << 20})
}

// TestS3WriterCredential: with the writer's credential (PutObject,
// GetObject, ListBucket only), the server itself refuses a delete and a
// conditional overwrite, and the backend says so with ErrReadOnly and
// ErrExists; saving, loading and listing work.
func TestS3WriterCredential(t *testing.T) {
	srv := s3test.New(t)
	ctx := context.Background()
	be, err := backend.OpenS3(srv.Config("w", true))
	if err != nil {
		t.Fatal(err)
	}
	b := backendtest.Data(1, 100000)
	h := backend.Handle{Type: backend.TypeData, Name: backendtest.Name(b)}
	if err := be.Save(ctx, h, backend.Bytes(b)); err != nil {
		t.Fatalf("the writer cannot save: %v", err)
	}
	if got, err := backend.ReadAll(ctx, be, h, 1<<20); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the writer cannot load: %v", err)
	}
	listed := 0
	if err := be.List(ctx, backend.TypeData, func(backend.FileInfo) error { listed++; return nil }); err != nil || listed != 1 {
		t.Fatalf("the writer lists %d objects: %v", listed, err)
	}
	if err := be.Remove(ctx, h); !errors.Is(err, backend.ErrReadOnly) {
		t.Errorf("the writer's remove: %v, want ErrReadOnly", err)
	}
	if _, err := be.Stat(ctx, h); err != nil {
		t.Errorf("the object is gone after the writer's refused remove: %v", err)
	}
	if err := be.Save(ctx, h, backend.Bytes([]byte("other"))); !errors.Is(err, backend.ErrExists) {
		t.Errorf("the writer's overwrite: %v, want ErrExists", err)
	}

	// The server's own answers, without larder's look before the PUT.
	c := srv.Client(true)
	key := "w/data/" + h.Name[:2] + "/" + h.Name
	err = c.RemoveObject(ctx, s3test.Bucket, key, minio.RemoveObjectOptions{})
	if er := minio.ToErrorResponse(err); er.StatusCode != http.StatusForbidden {
		t.Errorf("the server let the writer delete: %v", err)
	}
	opts := minio.PutObjectOptions{DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	_, err = c.PutObject(ctx, s3test.Bucket, key, bytes.NewReader([]byte("other")), 5, opts)
	if er := minio.ToErrorResponse(err); er.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("the server let a PUT with If-None-Match: * replace an object: %v", err)
	}
	obj, err := c.GetObject(ctx, s3test.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj)
	if !bytes.Equal(got, b) {
		t.Error("the object changed")
	}
	// The master's credential may delete.
	m, err := backend.OpenS3(srv.Config("w", false))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, h); err != nil {
		t.Errorf("the master cannot remove: %v", err)
	}
}

func TestParseS3URL(t *testing.T) {
	for _, c := range []struct {
		in                       string
		secure                   bool
		endpoint, bucket, prefix string
	}{
		{"s3:https://s3.example.com/bkt", true, "s3.example.com", "bkt", ""},
		{"s3:http://127.0.0.1:9000/bkt/some/prefix/", false, "127.0.0.1:9000", "bkt", "some/prefix"},
		{"s3:s3.amazonaws.com/bkt/larder", true, "s3.amazonaws.com", "bkt", "larder"},
		{"s3:https://host:443/bkt//a//b", true, "host:443", "bkt", "a/b"},
	} {
		cfg, err := backend.ParseS3URL(c.in)
		if err != nil || cfg.Secure != c.secure || cfg.Endpoint != c.endpoint || cfg.Bucket != c.bucket || cfg.Prefix != c.prefix {
			t.Errorf("%s: %+v %v", c.in, cfg, err)
		}
	}
	for _, bad := range []string{"s3:", "s3:https://host", "s3:https:///bkt", "s3:https://user:pw@host/bkt", "/srv/larder", "s3:host"} {
		if _, err := backend.ParseS3URL(bad); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// TestS3CustomCA: a server whose certificate a private CA signed works
// with --cacert (S3Config.CACertFile), passes the conformance suite's
// basics, and without the CA fails at once, naming the certificate (a
// certificate error is not retried).
func TestS3CustomCA(t *testing.T) {
	srv, err := s3test.StartTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if !strings.HasPrefix(srv.URL(""), "s3:https://") {
		t.Fatalf("the TLS server's location %s", srv.URL(""))
	}
	n := 0
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		n++
		be, err := backend.OpenS3(srv.Config(fmt.Sprintf("ca%d", n), false))
		if err != nil {
			t.Fatal(err)
		}
		return be
	}, backendtest.Options{ModTime: true, Large: 1 << 20})
	cfg := srv.Config("noca", false)
	cfg.CACertFile = ""
	be, err := backend.OpenS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := backend.Retry(be, backend.RetryPolicy{Attempts: 5, Initial: time.Hour})
	err = r.Save(context.Background(), backend.Handle{Type: backend.TypeLock, Name: "00000000000000aa"}, backend.Bytes([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "certificate") || !backend.IsPermanent(err) {
		t.Fatalf("without the CA: %v", err)
	}
}
