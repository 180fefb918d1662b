package backend

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an S3 repository is and how to reach it.
type S3Config struct {
	Endpoint string // host[:port]
	Secure   bool   // https (the default); false: plain http, for a local server
	Bucket   string
	Prefix   string // folder in the bucket ("" for the bucket's root)

	// Region of the bucket; "" takes AWS_DEFAULT_REGION or AWS_REGION,
	// else asks the server.
	Region string
	// BucketLookup is "auto" (virtual-host style for AWS and Google,
	// path style elsewhere), "dns" (virtual-host) or "path".
	BucketLookup string
	// CACertFile, when set, holds the PEM certificates the server's
	// certificate must chain to (instead of the system's).
	CACertFile string
	// Credentials, when set, are used instead of the environment's
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; the
	// shared credentials file with AWS_PROFILE; EC2/ECS roles).
	Credentials *credentials.Credentials
	// PartSize: objects larger than this go up as multipart uploads of
	// parts this size (at least 5 MiB; default 64 MiB).
	PartSize int64
	// Connections bounds idle connections kept to the server (the
	// caller bounds concurrent operations with Limit).
	Connections int
	// StallTimeout: an operation that makes no progress for this long
	// (no byte of the object sent or received, no name listed, no
	// answer) fails and may be retried (0: DefaultS3StallTimeout; tests
	// set less).
	StallTimeout time.Duration
}

// S3 timeouts (docs/STORAGE.md names them): connecting, the TLS handshake,
// waiting for an answer's headers after a request was sent, and an
// operation that makes no progress at all (S3Config.StallTimeout).
const (
	s3DialTimeout     = 30 * time.Second
	s3TLSTimeout      = 10 * time.Second
	s3ResponseTimeout = 2 * time.Minute
	// DefaultS3StallTimeout is how long an operation may make no progress.
	DefaultS3StallTimeout = 2 * time.Minute
	// s3MinPartSize is S3's smallest part of a multipart upload.
	s3MinPartSize = 5 << 20
	// DefaultS3PartSize is the default multipart threshold and part size.
	DefaultS3PartSize = 64 << 20
)

// ParseS3URL reads a repository location as restic writes it:
// s3:https://HOST[:PORT]/BUCKET[/PREFIX], s3:http://… for a plain-http
// server, or s3:HOST/BUCKET[/PREFIX] (https).
func ParseS3URL(s string) (S3Config, error) {
	rest, ok := strings.CutPrefix(s, "s3:")
	if !ok {
		return S3Config{}, fmt.Errorf("%q is not an s3: location", s)
	}
	cfg := S3Config{Secure: true}
	if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		u, err := url.Parse(rest)
		if err != nil {
			return S3Config{}, fmt.Errorf("repository location %q: %w", s, err)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return S3Config{}, fmt.Errorf("repository location %q: credentials and queries do not belong in the location (use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", s)
		}
		cfg.Secure = u.Scheme == "https"
		cfg.Endpoint = u.Host
		rest = strings.TrimPrefix(u.Path, "/")
	} else {
		host, p, _ := strings.Cut(rest, "/")
		cfg.Endpoint, rest = host, p
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	cfg.Bucket, cfg.Prefix = bucket, strings.Trim(path.Clean("/"+prefix), "/")
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return S3Config{}, fmt.Errorf("repository location %q: want s3:https://HOST[:PORT]/BUCKET[/PREFIX]", s)
	}
	return cfg, nil
}

// S3 is a repository in an S3-compatible bucket (AWS S3, Backblaze B2,
// MinIO, Ceph, SeaweedFS, versitygw, …). Every PUT carries
// If-None-Match: *, so a server that supports conditional writes refuses
// to replace an object itself; Save also checks for the object first, for
// servers that do not. Objects up to PartSize are one PUT, larger ones a
// multipart upload whose completion carries the condition.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	cfg      S3Config
	location string
	// noConditional is set once the server answers that it does not
	// implement If-None-Match.
	noConditional atomic.Bool
}

// OpenS3 returns the backend of cfg, with credentials from the
// environment unless cfg has some. It does not contact the server.
func OpenS3(cfg S3Config) (*S3, error) {
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultS3PartSize
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultS3StallTimeout
	}
	if cfg.StallTimeout < 0 {
		return nil, fmt.Errorf("s3: negative stall timeout %v", cfg.StallTimeout)
	}
	if cfg.PartSize < s3MinPartSize {
		return nil, fmt.Errorf("s3: part size %d is below S3's minimum of 5 MiB", cfg.PartSize)
	}
	tr, err := s3Transport(cfg)
	if err != nil {
		return nil, err
	}
	creds := cfg.Credentials
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}},
		})
	}
	v, err := creds.GetWithContext(&credentials.CredContext{Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}})
	if err != nil {
		return nil, fmt.Errorf("s3: credentials: %w", err)
	}
	if v.SignerType == credentials.SignatureAnonymous || v.AccessKeyID == "" {
		return nil, fmt.Errorf("s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file")
	}
	region := cfg.Region
	for _, env := range []string{"AWS_DEFAULT_REGION", "AWS_REGION"} {
		if region == "" {
			region = os.Getenv(env)
		}
	}
	opts := &minio.Options{
		Creds:     creds,
		Secure:    cfg.Secure,
		Region:    region,
		Transport: tr,
		// One try per request: Retry (RetryBackend) is the one retry
		// policy, with the bounds docs/STORAGE.md names.
		MaxRetries: 1,
	}
	switch strings.ToLower(cfg.BucketLookup) {
	case "", "auto":
		opts.BucketLookup = minio.BucketLookupAuto
	case "dns":
		opts.BucketLookup = minio.BucketLookupDNS
	case "path":
		opts.BucketLookup = minio.BucketLookupPath
	default:
		return nil, fmt.Errorf("s3: bucket lookup %q is not auto, dns or path", cfg.BucketLookup)
	}
	c, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	scheme := "https"
	if !cfg.Secure {
		scheme = "http"
	}
	loc := "s3:" + scheme + "://" + cfg.Endpoint + "/" + cfg.Bucket
	if cfg.Prefix != "" {
		loc += "/" + cfg.Prefix
	}
	return &S3{client: c, core: minio.Core{Client: c}, cfg: cfg, location: loc}, nil
}

func s3Transport(cfg S3Config) (*http.Transport, error) {
	conns := max(cfg.Connections, 2)
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: s3DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns * 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   s3TLSTimeout,
		ResponseHeaderTimeout: s3ResponseTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("s3: CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3: %s holds no PEM certificate", cfg.CACertFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// Location implements Backend.
func (s *S3) Location() string { return s.location }

// Close implements Backend.
func (s *S3) Close() error { return nil }

func (s *S3) key(h Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", Permanent(err)
	}
	var k string
	switch {
	case h.Type == TypeConfig:
		k = "config"
	case h.Type == TypeData && len(h.Name) >= 2:
		k = "data/" + h.Name[:2] + "/" + h.Name
	default:
		k = string(h.Type) + "/" + h.Name
	}
	if s.cfg.Prefix != "" {
		k = s.cfg.Prefix + "/" + k
	}
	return k, nil
}

// s3Error maps an S3 error to the backend's errors, keeping it as the
// cause.
func s3Error(h Handle, err error) error {
	if err == nil {
		return nil
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		// A certificate the client does not trust will not become
		// trusted by trying again.
		var cv *tls.CertificateVerificationError
		var ua x509.UnknownAuthorityError
		var hn x509.HostnameError
		if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) {
			return Permanent(fmt.Errorf("%s: %w (give the CA's certificate with --cacert)", h, err))
		}
		return fmt.Errorf("%s: %w", h, err)
	}
	switch {
	case er.StatusCode == http.StatusPreconditionFailed || er.Code == minio.PreconditionFailed:
		return fmt.Errorf("%w: %s", ErrExists, h)
	case er.Code == minio.NoSuchKey || er.Code == minio.NoSuchBucket || er.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s: %w", ErrNotFound, h, err)
	case er.Code == minio.AccessDenied || er.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %s: %w", ErrReadOnly, h, err)
	case er.Code == "QuotaExceeded" || er.Code == "EntityTooLarge" || er.StatusCode == http.StatusInsufficientStorage:
		return fmt.Errorf("%w: %s: %w", ErrNoSpace, h, err)
	case er.StatusCode == http.StatusBadRequest || er.StatusCode == http.StatusMethodNotAllowed ||
		er.Code == "InvalidArgument" || er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch":
		return Permanent(fmt.Errorf("%s: %w", h, err))
	}
	return fmt.Errorf("%s: %w", h, err)
}

// notImplemented reports an answer that the server lacks a feature.
func notImplemented(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.StatusCode == http.StatusNotImplemented || er.Code == "NotImplemented")
}

// watchdog ends an operation that makes no progress: its context is
// canceled when nothing kicks it (a read of the object's bytes, a listed
// name) for the stall timeout, so a transfer that hangs fails (and is
// retried) instead of blocking an ingest for ever.
type watchdog struct {
	ctx     context.Context
	timer   *time.Timer
	timeout time.Duration
	stalled error
	cancel  context.CancelFunc
}

// watch starts a watchdog for one operation; its context is the
// operation's.
func (s *S3) watch(ctx context.Context) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancelCause(ctx)
	d := s.cfg.StallTimeout
	w := &watchdog{ctx: ctx, timeout: d, stalled: fmt.Errorf("%w for %v", errStalled, d)}
	w.cancel = func() { cancel(w.stalled) }
	w.timer = time.AfterFunc(d, w.cancel)
	return ctx, w
}

// errStalled is the error of an operation the watchdog ended (transient:
// Retry retries it).
var errStalled = errors.New("s3: the operation made no progress")

func (w *watchdog) kick()  { w.timer.Reset(w.timeout) }
func (w *watchdog) pause() { w.timer.Stop() }
func (w *watchdog) stop()  { w.timer.Stop(); w.cancel() }

// err returns err of the operation on h, or the watchdog's own when it
// ended the operation: a stall is transient, where the context.Canceled
// that minio-go reports would be permanent.
func (w *watchdog) err(h Handle, err error) error {
	if err != nil && context.Cause(w.ctx) == w.stalled {
		return fmt.Errorf("%s: %w", h, w.stalled)
	}
	return err
}
func (w *watchdog) reader(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			w.kick()
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// readerAtSeeker is what minio-go streams from (and can re-read for
// Content-MD5) without copying the object into memory.
type readerAtSeeker interface {
	io.Reader
	io.ReaderAt
	io.Seeker
}

// sectionOf returns src as a ReaderAt/Seeker when it is one of this
// package's sources, else nil.
func sectionOf(src Source) readerAtSeeker {
	switch s := src.(type) {
	case *byteSource:
		return s.r
	case *fileSource:
		return io.NewSectionReader(s.f, 0, s.n)
	}
	return nil
}

// Save implements Backend.
func (s *S3) Save(ctx context.Context, h Handle, src Source) error {
	key, err := s.key(h)
	if err != nil {
		return err
	}
	// One watchdog for the whole save, the look included.
	ctx, wd := s.watch(ctx)
	defer wd.stop()
	// Servers without conditional writes would replace an object: look
	// first. (With them, the PUT's condition is what counts; the look
	// saves an upload of bytes already there.)
	if _, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{}); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, h)
	} else if err := wd.err(h, s3Error(h, err)); !errors.Is(err, ErrNotFound) {
		return err
	}
	wd.kick()
	if src.Length() > s.cfg.PartSize {
		return wd.err(h, s.saveMultipart(ctx, wd, h, key, src))
	}
	for {
		var body io.Reader = src
		if sec := sectionOf(src); sec != nil {
			body = sec
		}
		opts := minio.PutObjectOptions{
			ContentType:      "application/octet-stream",
			DisableMultipart: true,
			SendContentMd5:   true,
		}
		cond := !s.noConditional.Load()
		if cond {
			opts.SetMatchETagExcept("*")
		}
		_, err = s.client.PutObject(ctx, s.cfg.Bucket, key, progressReader(body, wd), src.Length(), opts)
		if cond && notImplemented(err) {
			// The server has no conditional writes (the look above
			// stands in for them): go on without.
			s.noConditional.Store(true)
			if err := src.Rewind(); err != nil {
				return Permanent(err)
			}
			continue
		}
		return wd.err(h, s3Error(h, err))
	}
}

// progressReader feeds the watchdog from reads of body, keeping body's
// ReaderAt and Seeker (minio-go streams from those).
func progressReader(body io.Reader, wd *watchdog) io.Reader {
	sec, ok := body.(readerAtSeeker)
	if !ok {
		return wd.reader(body)
	}
	return &watchedSection{readerAtSeeker: sec, wd: wd}
}

type watchedSection struct {
	readerAtSeeker
	wd *watchdog
}

func (w *watchedSection) Read(p []byte) (int, error) {
	n, err := w.readerAtSeeker.Read(p)
	if n > 0 {
		w.wd.kick()
	}
	return n, err
}

func (w *watchedSection) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.readerAtSeeker.ReadAt(p, off)
	if n > 0 {
		w.wd.kick()
	}
	return n, err
}

// saveMultipart uploads src in parts of PartSize, one at a time (memory:
// one part), and completes the upload with If-None-Match: *. A failed
// upload is aborted (the credential needs s3:AbortMultipartUpload for
// that; without it the parts stay until the bucket's lifecycle rule or a
// master's prune removes them).
//
// The watchdog sees each part's bytes go out, not only the parts that
// are done: a part takes as long as the link needs.
func (s *S3) saveMultipart(ctx context.Context, wd *watchdog, h Handle, key string, src Source) (err error) {
	id, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return s3Error(h, err)
	}
	defer func() {
		if err != nil {
			// The abort is one small request: it may take as long as a
			// stall (at most a minute), not as long as the upload.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.StallTimeout, time.Minute))
			defer cancel()
			// An upload that stays is invisible; CleanTemp aborts it
			// later. The error to report is the save's.
			_ = s.core.AbortMultipartUpload(actx, s.cfg.Bucket, key, id)
		}
	}()
	buf := make([]byte, s.cfg.PartSize)
	var parts []minio.CompletePart
	for n := 1; ; n++ {
		m, rerr := io.ReadFull(wd.reader(src), buf)
		if m > 0 {
			sum := md5.Sum(buf[:m])
			p, err := s.core.PutObjectPart(ctx, s.cfg.Bucket, key, id, n, progressReader(bytes.NewReader(buf[:m]), wd), int64(m),
				minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum[:])})
			if err != nil {
				return s3Error(h, err)
			}
			wd.kick()
			parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	opts := minio.PutObjectOptions{}
	if !s.noConditional.Load() {
		opts.SetMatchETagExcept("*")
	}
	_, err = s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, key, id, parts, opts)
	if notImplemented(err) && !s.noConditional.Load() {
		s.noConditional.Store(true)
		_, err = s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, key, id, parts, minio.PutObjectOptions{})
	}
	return s3Error(h, err)
}

// Load implements Backend.
func (s *S3) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	key, err := s.key(h)
	if err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return Permanent(fmt.Errorf("%s: invalid range %d+%d", h, offset, length))
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return Permanent(err)
	}
	ctx, wd := s.watch(ctx)
	defer wd.stop()
	rc, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// A range that starts at or past the end: no bytes.
			return fn(bytes.NewReader(nil))
		}
		return wd.err(h, s3Error(h, err))
	}
	defer func() { _ = rc.Close() }() // a response body being read
	return wd.err(h, fn(wd.reader(rc)))
}

// Stat implements Backend.
func (s *S3) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	key, err := s.key(h)
	if err != nil {
		return FileInfo{}, err
	}
	ctx, wd := s.watch(ctx)
	defer wd.stop()
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return FileInfo{}, wd.err(h, s3Error(h, err))
	}
	return FileInfo{Name: h.Name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements Backend. Keys that are not objects of the type (deeper
// folders, names that are not valid) are skipped.
func (s *S3) List(ctx context.Context, t Type, fn func(FileInfo) error) error {
	if t == TypeConfig {
		fi, err := s.Stat(ctx, Handle{TypeConfig, "config"})
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	}
	prefix := string(t) + "/"
	if s.cfg.Prefix != "" {
		prefix = s.cfg.Prefix + "/" + prefix
	}
	// The watchdog waits for the server's names, not for fn.
	ctx, wd := s.watch(ctx)
	defer wd.stop()
	for oi := range s.client.ListObjectsIter(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return wd.err(Handle{Type: t}, s3Error(Handle{Type: t}, oi.Err))
		}
		wd.kick()
		rel := strings.TrimPrefix(oi.Key, prefix)
		name := rel
		if t == TypeData {
			dir, n, ok := strings.Cut(rel, "/")
			if !ok || len(n) < 2 || dir != n[:2] {
				continue
			}
			name = n
		}
		if (Handle{t, name}).Valid() != nil {
			continue
		}
		wd.pause() // fn's time is not the server's
		if err := fn(FileInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
		wd.kick()
	}
	return wd.err(Handle{Type: t}, ctx.Err())
}

// Remove implements Backend.
func (s *S3) Remove(ctx context.Context, h Handle) error {
	key, err := s.key(h)
	if err != nil {
		return err
	}
	ctx, wd := s.watch(ctx)
	defer wd.stop()
	err = s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{})
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.StatusCode == http.StatusOK {
		return nil // minio-go wants 204; some servers answer 200
	}
	return wd.err(h, s3Error(h, err))
}

// CleanTemp implements TempCleaner: multipart uploads of this repository
// started before cutoff and never completed (a killed ingest) are aborted.
func (s *S3) CleanTemp(ctx context.Context, cutoff time.Time) (int, error) {
	prefix := s.cfg.Prefix
	if prefix != "" {
		prefix += "/"
	}
	n := 0
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, prefix, true) {
		if u.Err != nil {
			return n, s3Error(Handle{Type: TypeData}, u.Err)
		}
		if u.Initiated.Before(cutoff) {
			if err := s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, u.Key, u.UploadID); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// MakeBucket creates the bucket if it does not exist (init with a
// credential that may).
func (s *S3) MakeBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s3Error(Handle{Type: TypeConfig, Name: "config"}, err)
	}
	if ok {
		return nil
	}
	return s3Error(Handle{Type: TypeConfig, Name: "config"}, s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region}))
}
