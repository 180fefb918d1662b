// Package backend stores a repository's objects: immutable, named blobs
// of bytes in folders by type. One interface, [Backend], is implemented by
// a local folder ([Local]), S3-compatible object storage ([S3]) and memory
// ([Mem], for tests), and wrapped by [Retry] (retries with backoff),
// [Limit] (a bound on concurrent operations) and [Fault] (injected
// failures, for tests). Every backend passes the one conformance suite in
// package backendtest.
//
// # The contract
//
// Objects are never replaced: Save of an existing name fails with
// [ErrExists] and leaves the object as it was; on S3 the PUT carries
// If-None-Match: * so the server refuses the overwrite itself. A Save is
// atomic: after a crash or a failed Save, the name holds the whole object
// or nothing. Writers (the forum server) only Save, Load, Stat and List;
// Remove is for master operations, so a storage credential without delete
// rights is enough for a writer.
//
// Errors are classified with errors.Is: [ErrNotFound], [ErrExists],
// [ErrReadOnly] (the storage refuses writes or deletes: a credential
// without those rights, a read-only mount), [ErrNoSpace]. Anything else may
// be transient; [Retry] retries it, except errors marked [Permanent].
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Type names a kind of object in a repository; it is the object's folder.
type Type string

// Object types (their folder names are part of the repository format,
// docs/FORMAT.md).
const (
	TypeConfig   Type = "config"    // the repository's configuration (one object)
	TypeKey      Type = "keys"      // key records, revocations, the master key file
	TypeData     Type = "data"      // pack files, under data/<first two hex digits>/
	TypeIndex    Type = "index"     // index files
	TypeSnapshot Type = "snapshots" // snapshot manifests
	TypeDrill    Type = "drills"    // restore drill records
	TypeForget   Type = "forget"    // forget records
	TypePrune    Type = "prune"     // prune marks
	TypeLock     Type = "locks"     // locks
	TypeTimes    Type = "times"     // storage times the master vouches for (copies)
)

// Types lists every object type, config first.
var Types = []Type{TypeConfig, TypeKey, TypeData, TypeIndex, TypeSnapshot, TypeDrill, TypeForget, TypePrune, TypeLock, TypeTimes}

// Handle names one object.
type Handle struct {
	Type Type
	Name string
}

func (h Handle) String() string {
	if h.Type == TypeConfig {
		return "config"
	}
	return string(h.Type) + "/" + h.Name
}

// Valid reports whether h names an object a backend can hold: a known type
// and a plain name (no separators, not "." or "..", at most MaxNameLen
// bytes). The config's name is "config".
func (h Handle) Valid() error {
	known := false
	for _, t := range Types {
		known = known || t == h.Type
	}
	switch {
	case !known:
		return fmt.Errorf("invalid object type %q", h.Type)
	case h.Type == TypeConfig && h.Name != "config":
		return fmt.Errorf("invalid config name %q", h.Name)
	case h.Name == "" || h.Name == "." || h.Name == ".." || len(h.Name) > MaxNameLen:
		return fmt.Errorf("invalid object name %q", h.Name)
	}
	for i := 0; i < len(h.Name); i++ {
		if c := h.Name[i]; c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("invalid object name %q", h.Name)
		}
	}
	return nil
}

// MaxNameLen bounds an object's name.
const MaxNameLen = 200

// FileInfo describes a stored object.
type FileInfo struct {
	Name string
	Size int64
	// ModTime is when the storage stored the object, by the storage's
	// clock (a file's modification time, S3's Last-Modified); zero when
	// the backend cannot tell.
	ModTime time.Time
}

// Source is what Save stores: its length is known before it is read (S3
// needs it) and it can be read again from the start (a retried upload).
type Source interface {
	io.Reader
	// Length is the number of bytes the reader yields.
	Length() int64
	// Rewind starts the reader again at the first byte.
	Rewind() error
}

// Bytes returns a Source of b (not copied: b must not change while the
// Source is in use).
func Bytes(b []byte) Source { return &byteSource{r: bytes.NewReader(b), n: int64(len(b))} }

type byteSource struct {
	r *bytes.Reader
	n int64
}

func (s *byteSource) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *byteSource) Length() int64              { return s.n }
func (s *byteSource) Rewind() error              { _, err := s.r.Seek(0, io.SeekStart); return err }

// File returns a Source of the whole file f, from its first byte. f stays
// open: the caller closes it.
func File(f *os.File) (Source, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &fileSource{f: f, n: fi.Size()}
	return s, s.Rewind()
}

type fileSource struct {
	f *os.File
	n int64
}

func (s *fileSource) Read(p []byte) (int, error) { return s.f.Read(p) }
func (s *fileSource) Length() int64              { return s.n }
func (s *fileSource) Rewind() error              { _, err := s.f.Seek(0, io.SeekStart); return err }

// Backend stores immutable objects (see the package documentation for the
// contract). Its methods are safe for concurrent use.
type Backend interface {
	// Location describes where the repository is, for messages; it never
	// holds a secret.
	Location() string
	// Save stores an object that must not exist yet, atomically: after a
	// crash or an error the name holds the whole object or nothing. An
	// existing object gives ErrExists and is left as it was.
	Save(ctx context.Context, h Handle, src Source) error
	// Load calls fn with a reader of length bytes at offset (length 0:
	// to the end). fn must read what it needs before it returns and may
	// be called again if the read is retried (it must start afresh). A
	// reader of a range past the end yields fewer bytes.
	Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error
	// Stat returns what the storage knows of the object.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for each object of type t, in lexical order of names.
	// Objects removed while the listing runs may or may not be listed.
	// Temporary objects of unfinished saves are never listed.
	List(ctx context.Context, t Type, fn func(FileInfo) error) error
	// Remove deletes an object. Removing a missing object may succeed or
	// give ErrNotFound (S3 cannot tell).
	Remove(ctx context.Context, h Handle) error
	// Close releases what the backend holds (connections).
	Close() error
}

// Errors of backends, for errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Save of an object that exists.
	ErrExists = errors.New("object already exists")
	// ErrReadOnly: the storage refuses to write or delete (read-only
	// storage, or a credential without those rights).
	ErrReadOnly = errors.New("repository storage refuses the change (read-only, or the credential has no right to it)")
	// ErrNoSpace: the storage is full.
	ErrNoSpace = errors.New("no space left on the repository storage")
)

// permanentError marks an error that retrying cannot cure.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot cure: [Retry] returns it
// at once. A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether retrying cannot cure err: it is marked
// [Permanent], or is one of the classified errors, or the context ended.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) ||
		errors.Is(err, ErrReadOnly) || errors.Is(err, ErrNoSpace) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ReadAll loads a whole object of at most max bytes.
func ReadAll(ctx context.Context, be Backend, h Handle, max int64) ([]byte, error) {
	fi, err := be.Stat(ctx, h)
	if err != nil {
		return nil, err
	}
	if fi.Size > max {
		return nil, Permanent(fmt.Errorf("%s: %d bytes is over the %d-byte limit", h, fi.Size, max))
	}
	var b []byte
	err = be.Load(ctx, h, 0, 0, func(r io.Reader) error {
		buf := bytes.NewBuffer(make([]byte, 0, fi.Size))
		if _, err := io.Copy(buf, io.LimitReader(r, max+1)); err != nil {
			return err
		}
		b = buf.Bytes()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, Permanent(fmt.Errorf("%s: over the %d-byte limit", h, max))
	}
	return b, nil
}

// ReadRange loads exactly n bytes at off into buf (grown if too small) and
// returns them.
func ReadRange(ctx context.Context, be Backend, h Handle, off, n int64, buf []byte) ([]byte, error) {
	if n <= 0 {
		return buf[:0], nil
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	err := be.Load(ctx, h, off, n, func(r io.Reader) error {
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("%s: reading %d bytes at %d: %w", h, n, off, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// ctxReader stops reading when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Connections bounds the operations running at once (default 5).
	Connections int
	// CACertFile, S3Region, S3BucketLookup: see S3Config.
	CACertFile     string
	S3Region       string
	S3BucketLookup string
	// Retry is the retry policy (zero: DefaultRetry).
	Retry RetryPolicy
	// Report hears of failures that are retried.
	Report func(op string, h Handle, err error, wait time.Duration)
}

// DefaultConnections is how many operations run at once by default
// (restic's default for S3).
const DefaultConnections = 5

// Open opens the repository storage at location: s3:… (see ParseS3URL)
// or a folder. The backend retries (opts.Retry) and runs at most
// opts.Connections operations at once.
func Open(location string, opts OpenOptions) (Backend, error) {
	if opts.Connections <= 0 {
		opts.Connections = DefaultConnections
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry = DefaultRetry
	}
	var be Backend
	switch {
	case location == "":
		return nil, errors.New("no repository location")
	case len(location) > 3 && location[:3] == "s3:":
		cfg, err := ParseS3URL(location)
		if err != nil {
			return nil, err
		}
		cfg.CACertFile, cfg.Region, cfg.BucketLookup, cfg.Connections = opts.CACertFile, opts.S3Region, opts.S3BucketLookup, opts.Connections
		s, err := OpenS3(cfg)
		if err != nil {
			return nil, err
		}
		be = s
	default:
		be = OpenLocal(location)
	}
	r := Retry(Limit(be, opts.Connections), opts.Retry)
	r.Report = opts.Report
	return r, nil
}
