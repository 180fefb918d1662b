package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Type names a kind of object in a repository; it is the object's folder.
type Type string

const (
	TypeConfig   Type = "config"    // the repository's configuration (one object)
	TypeKey      Type = "keys"      // key records, revocations, the master key file
	TypeData     Type = "data"      // pack files
	TypeIndex    Type = "index"     // index files
	TypeSnapshot Type = "snapshots" // snapshot manifests
	TypeDrill    Type = "drills"    // restore drill records
	TypeForget   Type = "forget"    // forget records
	TypePrune    Type = "prune"     // prune marks
	TypeLock     Type = "locks"     // locks
)

// contentNamed lists the types named by the SHA-256 of their bytes, so
// anyone can find bit rot without a key.
var contentNamed = []Type{TypeData, TypeIndex, TypeSnapshot, TypeDrill, TypeForget, TypePrune}

// Handle names one object.
type Handle struct {
	Type Type
	Name string
}

func (h Handle) String() string { return string(h.Type) + "/" + h.Name }

// Backend stores immutable objects. Writers only add objects (Save never
// replaces one); Remove is used by master operations (forget, prune,
// lock cleanup) alone, so storage credentials without delete rights are
// enough for the forum server.
type Backend interface {
	// Save stores an object that must not exist yet, atomically: after a
	// crash it either exists whole or not at all.
	Save(ctx context.Context, h Handle, r io.Reader) error
	// Load opens length bytes at offset (length 0: to the end).
	Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's size.
	Stat(ctx context.Context, h Handle) (int64, error)
	// List calls fn for each object of type t, with its size.
	List(ctx context.Context, t Type, fn func(name string, size int64) error) error
	// Remove deletes an object.
	Remove(ctx context.Context, h Handle) error
	// Location describes where the repository is, for messages.
	Location() string
}

// Errors of backends.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Save of an object that exists.
	ErrExists = errors.New("object already exists")
	// ErrReadOnly: the storage refuses writes.
	ErrReadOnly = errors.New("repository storage is read-only")
	// ErrNoSpace: the storage is full.
	ErrNoSpace = errors.New("no space left on the repository storage")
)

// Local is a repository in a local folder.
type Local struct {
	root string
}

// OpenLocal returns the backend of the folder root.
func OpenLocal(root string) *Local { return &Local{root: root} }

// Location implements Backend.
func (l *Local) Location() string { return l.root }

func (l *Local) path(h Handle) (string, error) {
	if h.Name == "" || strings.ContainsAny(h.Name, `/\`) || h.Name == "." || h.Name == ".." {
		return "", fmt.Errorf("invalid object name %q", h.Name)
	}
	if h.Type == TypeConfig {
		return filepath.Join(l.root, "config"), nil
	}
	if h.Type == TypeData && len(h.Name) >= 2 {
		return filepath.Join(l.root, string(h.Type), h.Name[:2], h.Name), nil
	}
	return filepath.Join(l.root, string(h.Type), h.Name), nil
}

// classify maps a file system error to the backend's errors.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	case errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: %v", ErrReadOnly, err)
	}
	return err
}

// Save writes to a temporary name in the same folder, syncs it, renames it
// into place (without replacing an existing object) and syncs the folder.
func (l *Local) Save(ctx context.Context, h Handle, r io.Reader) (err error) {
	p, err := l.path(h)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return classify(err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+h.Name+"-*")
	if err != nil {
		return classify(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return classify(err)
	}
	if err = f.Sync(); err != nil {
		return classify(err)
	}
	if err = f.Close(); err != nil {
		return classify(err)
	}
	// os.Link fails if the target exists: objects are never replaced.
	if err = os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, h)
		}
		return classify(err)
	}
	if err = os.Remove(tmp); err != nil {
		return classify(err)
	}
	return classify(syncDir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

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

// Load implements Backend.
func (l *Local) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	p, err := l.path(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, classify(err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	if length > 0 {
		return &limitedFile{Reader: io.LimitReader(f, length), f: f}, nil
	}
	return f, nil
}

type limitedFile struct {
	io.Reader
	f *os.File
}

func (l *limitedFile) Close() error { return l.f.Close() }

// Stat implements Backend.
func (l *Local) Stat(ctx context.Context, h Handle) (int64, error) {
	p, err := l.path(h)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, classify(err)
	}
	return fi.Size(), nil
}

// List implements Backend; names are listed in sorted order, temporary
// files of interrupted saves are skipped.
func (l *Local) List(ctx context.Context, t Type, fn func(string, int64) error) error {
	root := filepath.Join(l.root, string(t))
	var names []string
	sizes := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the folder was read
		}
		if err != nil {
			return err
		}
		names = append(names, d.Name())
		sizes[d.Name()] = info.Size()
		return nil
	})
	if err != nil {
		return classify(err)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(n, sizes[n]); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements Backend.
func (l *Local) Remove(ctx context.Context, h Handle) error {
	p, err := l.path(h)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return classify(err)
	}
	return classify(syncDir(filepath.Dir(p)))
}

// saveContent stores b under the SHA-256 of its bytes and returns the name.
func saveContent(ctx context.Context, be Backend, t Type, b []byte) (string, error) {
	sum := sha256.Sum256(b)
	name := hex.EncodeToString(sum[:])
	err := be.Save(ctx, Handle{t, name}, bytesReader(b))
	if errors.Is(err, ErrExists) {
		return name, nil // the same bytes are already there
	}
	return name, err
}

// loadAll reads a whole object, refusing objects over max bytes.
func loadAll(ctx context.Context, be Backend, h Handle, max int64) ([]byte, error) {
	size, err := be.Stat(ctx, h)
	if err != nil {
		return nil, err
	}
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit", h, size, max)
	}
	rc, err := be.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, 0, size)
	buf := bytesBuffer(b)
	_, err = io.Copy(buf, io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf.b)) > max {
		return nil, fmt.Errorf("%s: over the %d-byte limit", h, max)
	}
	return buf.b, nil
}

type byteSink struct{ b []byte }

func bytesBuffer(b []byte) *byteSink            { return &byteSink{b: b} }
func (s *byteSink) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// verifyContentName reports whether b hashes to name.
func verifyContentName(name string, b []byte) bool {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == name
}

// TempCleaner is implemented by backends whose interrupted saves can leave
// temporary objects behind.
type TempCleaner interface {
	// CleanTemp removes temporary objects last written before cutoff and
	// returns how many went.
	CleanTemp(ctx context.Context, cutoff time.Time) (int, error)
}

// CleanTemp implements TempCleaner: it removes the .tmp- files of
// interrupted saves in every folder of the repository.
func (l *Local) CleanTemp(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
		}
		return nil
	})
	return n, classify(err)
}

// ModTime implements ModTimer.
func (l *Local) ModTime(ctx context.Context, h Handle) (time.Time, error) {
	p, err := l.path(h)
	if err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}, classify(err)
	}
	return fi.ModTime(), nil
}
