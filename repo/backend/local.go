package backend

import (
	"context"
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

// Local is a repository in a folder: the local disk, NFS, SMB or a FUSE
// mount of a bucket. Objects are written under a temporary name in their
// final folder, synced, and renamed into place without replacing an
// existing object (renameat2 RENAME_NOREPLACE where the file system has
// it; elsewhere a check for the name just before a plain rename). No hard
// links are used, so file systems without them work.
type Local struct {
	root string
}

// tempPrefix starts the names of unfinished saves; List skips them.
const tempPrefix = ".tmp-"

// OpenLocal returns the backend of the folder root (made on the first
// Save).
func OpenLocal(root string) *Local { return &Local{root: root} }

// Location implements Backend.
func (l *Local) Location() string { return l.root }

// Close implements Backend.
func (l *Local) Close() error { return nil }

// Path is where the object h is stored (tests play the storage provider
// with it).
func (l *Local) Path(h Handle) (string, error) { return l.path(h) }

func (l *Local) path(h Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", Permanent(err)
	}
	if h.Type == TypeConfig {
		return filepath.Join(l.root, "config"), nil
	}
	if h.Type == TypeData && len(h.Name) >= 2 {
		return filepath.Join(l.root, string(h.Type), h.Name[:2], h.Name), nil
	}
	return filepath.Join(l.root, string(h.Type), h.Name), nil
}

// classify maps a file system error to the backend's errors, keeping it
// as the cause.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	case errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	return err
}

// Save implements Backend: a temporary file in the object's folder,
// synced, renamed into place without replacing anything, and the folder
// synced.
func (l *Local) Save(ctx context.Context, h Handle, src Source) (err error) {
	p, err := l.path(h)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return classify(err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+h.Name+"-*")
	if err != nil {
		return classify(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			// The error to report is the save's; the partial file goes
			// (what stays, CleanTemp removes).
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, src})
	if err != nil {
		return classify(err)
	}
	if n != src.Length() {
		return Permanent(fmt.Errorf("%s: the source gave %d bytes, it said %d", h, n, src.Length()))
	}
	if err = f.Sync(); err != nil {
		return classify(err)
	}
	if err = f.Close(); err != nil {
		return classify(err)
	}
	if err = renameNoReplace(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, h)
		}
		return classify(err)
	}
	return classify(syncDir(dir))
}

// renameNoReplace renames without replacing an existing target: with
// RENAME_NOREPLACE where the system and file system have it, else with a
// check just before a plain rename (two concurrent saves of one name could
// then both succeed; larder's names are content hashes, whose bytes are
// the same, or random).
func renameNoReplace(from, to string) error {
	err := renameat2(from, to)
	if err == nil || !errors.Is(err, errNoRenameat2) {
		return err
	}
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(from, to)
}

var errNoRenameat2 = errors.New("renameat2 not supported here")

// renameat2 is renameat2NoReplace; tests replace it to run the checked
// rename of file systems without RENAME_NOREPLACE.
var renameat2 = renameat2NoReplace

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // opened to sync it, never written
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// Load implements Backend.
func (l *Local) Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error {
	p, err := l.path(h)
	if err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return Permanent(fmt.Errorf("%s: invalid range %d+%d", h, offset, length))
	}
	f, err := os.Open(p)
	if err != nil {
		return classify(err)
	}
	defer func() { _ = f.Close() }() // read-only
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return err
		}
	}
	var r io.Reader = f
	if length > 0 {
		r = io.LimitReader(f, length)
	}
	return fn(ctxReader{ctx, r})
}

// Stat implements Backend.
func (l *Local) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	p, err := l.path(h)
	if err != nil {
		return FileInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return FileInfo{}, classify(err)
	}
	if !fi.Mode().IsRegular() {
		return FileInfo{}, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, h)
	}
	return FileInfo{Name: h.Name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements Backend; temporary files of unfinished saves, folders
// and anything but regular files are skipped.
func (l *Local) List(ctx context.Context, t Type, fn func(FileInfo) error) error {
	if t == TypeConfig {
		fi, err := l.Stat(ctx, Handle{TypeConfig, "config"})
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	}
	root := filepath.Join(l.root, string(t))
	var out []FileInfo
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if p == root {
					return filepath.SkipDir
				}
				return nil // removed since its folder was read
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			// data/ has one level of folders; other types none.
			if p != root && (t != TypeData || filepath.Dir(p) != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), tempPrefix) || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the folder was read
		}
		if err != nil {
			return err
		}
		out = append(out, FileInfo{Name: d.Name(), Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return classify(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, fi := range out {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
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

// TempCleaner is implemented by backends whose interrupted saves can leave
// temporary objects behind.
type TempCleaner interface {
	// CleanTemp removes temporary objects last written before cutoff and
	// returns how many went.
	CleanTemp(ctx context.Context, cutoff time.Time) (int, error)
}

// CleanTemp implements TempCleaner: it removes the temporary files of
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
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
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
