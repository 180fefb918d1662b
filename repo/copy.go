package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
)

// Copying a repository (larder copy --to) moves it to another storage
// object by object: the same repository (its ID, keys and snapshots) in a
// new place, such as a folder moved to S3. Every object is read, checked
// against its name (content-named ones hash to it), and stored at the
// destination; one already there with the same size is kept, so an
// interrupted copy goes on where it stopped. The config comes last: the
// destination is a repository once the copy is whole. The destination's
// storage dates every copied snapshot now, so the master records when the
// source stored each (a signed times record): forget goes on trusting
// those times instead of finding every snapshot back-dated.

// timesContext signs a times record.
const (
	timesContext = crypto.SigContext("larder times v1")
	maxTimes     = 64 << 20
	// copyInMemory: objects up to this size are copied through memory,
	// larger ones through a temporary file.
	copyInMemory = 8 << 20
)

// timesRecord is the master's statement of when the storage stored
// snapshots (where they were before a copy).
type timesRecord struct {
	Time   time.Time        `json:"time"`
	Stored map[ID]time.Time `json:"stored"`
}

// CopyResult says what CopyTo did.
type CopyResult struct {
	Objects int   // copied
	Kept    int   // already at the destination
	Bytes   int64 // copied
}

// CopyTo copies the repository to dst (master only), resumably, reporting
// each folder's progress (SetProgress).
func (r *Repo) CopyTo(ctx context.Context, dst backend.Backend) (*CopyResult, error) {
	if err := r.need("copy the repository", crypto.RoleMaster); err != nil {
		return nil, err
	}
	if cfg, err := ReadConfig(ctx, dst); err == nil && cfg.ID != r.cfg.ID {
		return nil, fmt.Errorf("%s holds another repository (%s)", dst.Location(), cfg.ID)
	} else if err != nil && !errors.Is(err, ErrNoRepository) {
		return nil, err
	}
	// No prune under the copy.
	unlock, err := r.ReadLock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &CopyResult{}
	types := []backend.Type{backend.TypeKey, backend.TypeData, backend.TypeIndex, backend.TypeSnapshot,
		backend.TypeDrill, backend.TypeForget, backend.TypePrune, backend.TypeTimes}
	stored := map[ID]time.Time{}
	for _, t := range types {
		var infos []backend.FileInfo
		if err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
			infos = append(infos, fi)
			return nil
		}); err != nil {
			return nil, err
		}
		for n, fi := range infos {
			r.Report("copy "+string(t), int64(n), int64(len(infos)))
			h := backend.Handle{Type: t, Name: fi.Name}
			if err := r.copyObject(ctx, dst, h, fi.Size, res); err != nil {
				return nil, err
			}
			if t == backend.TypeSnapshot && !fi.ModTime.IsZero() {
				if id, err := ParseID(fi.Name); err == nil {
					stored[id] = fi.ModTime
				}
			}
		}
	}
	// Times the source's storage gave, vouched for by the master (earlier
	// records the source held were copied above, and say more).
	times, err := r.recordedTimes(ctx)
	if err != nil {
		return nil, err
	}
	for id, t := range times {
		if t.Before(stored[id]) || stored[id].IsZero() {
			stored[id] = t
		}
	}
	if len(stored) > 0 {
		b, err := r.signRecord(timesContext, timesRecord{Time: r.now().UTC(), Stored: stored})
		if err != nil {
			return nil, err
		}
		if _, err := saveContent(ctx, dst, backend.TypeTimes, b); err != nil {
			return nil, err
		}
	}
	if err := r.copyObject(ctx, dst, backend.Handle{Type: backend.TypeConfig, Name: "config"}, -1, res); err != nil {
		return nil, err
	}
	return res, nil
}

// copyObject copies one object unless dst has it with the same size
// (size -1: not known; look it up).
func (r *Repo) copyObject(ctx context.Context, dst backend.Backend, h backend.Handle, size int64, res *CopyResult) error {
	if size < 0 {
		fi, err := r.be.Stat(ctx, h)
		if err != nil {
			return err
		}
		size = fi.Size
	}
	if fi, err := dst.Stat(ctx, h); err == nil && fi.Size == size {
		res.Kept++
		return nil
	} else if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	src, done, err := r.readForCopy(ctx, h, size)
	if err != nil {
		return err
	}
	defer done()
	if err := dst.Save(ctx, h, src); err != nil && !errors.Is(err, backend.ErrExists) {
		return fmt.Errorf("%s: copying %s: %w", dst.Location(), h, err)
	}
	res.Objects++
	res.Bytes += size
	return nil
}

// readForCopy reads an object whole (into memory, or a temporary file for
// a large one) and checks a content-named one against its name.
func (r *Repo) readForCopy(ctx context.Context, h backend.Handle, size int64) (backend.Source, func(), error) {
	named := false
	for _, t := range contentNamed {
		named = named || t == h.Type
	}
	check := func(sum []byte) error {
		if named && hex.EncodeToString(sum) != h.Name {
			return fmt.Errorf("%s: %w: content does not match its name; not copied (check names it)", h, ErrCorrupt)
		}
		return nil
	}
	if size <= copyInMemory {
		b, err := loadAll(ctx, r.be, h, copyInMemory)
		if err != nil {
			return nil, nil, err
		}
		sum := sha256.Sum256(b)
		if err := check(sum[:]); err != nil {
			return nil, nil, err
		}
		return backend.Bytes(b), func() {}, nil
	}
	dir, cleanup, err := r.tempDir("copy")
	if err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(dir, "object-*")
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	// Read-only from here; cleanup removes the file.
	done := func() { _ = f.Close(); cleanup() }
	hash := sha256.New()
	err = r.be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		hash.Reset()
		_, err := io.Copy(io.MultiWriter(f, hash), rd)
		return err
	})
	if err == nil {
		err = check(hash.Sum(nil))
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	src, err := backend.File(f)
	if err != nil {
		done()
		return nil, nil, err
	}
	return src, done, nil
}

// recordedTimes reads the master's times records: when a storage stored
// each snapshot, where a copy moved them from.
func (r *Repo) recordedTimes(ctx context.Context) (map[ID]time.Time, error) {
	out := map[ID]time.Time{}
	err := list(ctx, r.be, backend.TypeTimes, func(name string, _ int64) error {
		obj := "times/" + name
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeTimes, Name: name}, maxTimes)
		if err != nil || !verifyContentName(name, b) {
			r.warn(obj, "skipped: unreadable, or content does not match its name")
			return nil
		}
		var rec timesRecord
		if err := r.openRecord(timesContext, b, &rec); err != nil {
			r.warn(obj, fmt.Sprintf("skipped: not a record the master signed: %v", err))
			return nil
		}
		for id, t := range rec.Stored {
			if old, ok := out[id]; !ok || t.Before(old) {
				out[id] = t
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
