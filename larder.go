// Package larder joins the pieces: Ingest turns a backup file into
// canonical streams (recompress), chunks them (chunk) and stores them in a
// repository (repo) as a signed snapshot; Restore turns a snapshot back
// into the same file, verified by SHA-256; Drill proves a snapshot
// restores, and with PostgreSQL that its dump loads. The command line
// (cmd/larder) drives these functions.
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package larder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/larder/larder/crypto"

	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// IngestOptions tune Ingest.
type IngestOptions struct {
	// DryRun computes what would be stored and stores nothing.
	DryRun bool
	// Force ingests a file even when the same bytes are stored already.
	Force bool
	// Host names the machine in the manifest.
	Host string
	// Site is the forum the backup belongs to (--site); "" derives it
	// from the path and content (site.go).
	Site string
	// Tags are recorded in the manifest (ingest --tag).
	Tags []string
	// Progress, when set, is called now and then with the bytes of the
	// file read so far in each phase ("hash", then "store").
	Progress func(phase string, done, total int64)
}

// progressReader reports how far a reader got.
type progressReader struct {
	r     io.Reader
	phase string
	done  int64
	total int64
	last  time.Time
	fn    func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && (time.Since(p.last) > 200*time.Millisecond || err == io.EOF) {
		p.last = time.Now()
		p.fn(p.phase, p.done, p.total)
	}
	return n, err
}

// IngestResult says what Ingest did with one file.
type IngestResult struct {
	Path     string
	Size     int64
	SHA256   [32]byte
	Snapshot repo.ID // zero for a dry run or a skipped file
	// Existing is set when the same bytes were stored already (the
	// snapshot that holds them); nothing was ingested.
	Existing string
	// Site and Made: the snapshot's site and when its backup was made.
	Site     string
	Made     time.Time
	Summary  *recompress.Summary
	Warnings []*recompress.Warning
	Stats    repo.IngestStats
}

// Damaged reports whether the backup itself (not content it carries) was
// found damaged: it is stored exactly, but flagged.
func (r *IngestResult) Damaged() bool {
	for _, w := range r.Warnings {
		if !w.Content {
			return true
		}
	}
	return false
}

// ErrInput reports a file that cannot be read as input.
var ErrInput = errors.New("cannot read input")

// Ingest stores one backup file as a snapshot.
func Ingest(ctx context.Context, r *repo.Repo, path string, opts IngestOptions) (*IngestResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer func() { _ = f.Close() }() // read-only
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInput, path)
	}
	res := &IngestResult{Path: path, Size: fi.Size()}

	// The original's hash first: a file stored already is skipped.
	h := sha256.New()
	if _, err := io.Copy(h, &progressReader{r: bufio.NewReaderSize(f, 1<<20), phase: "hash", total: fi.Size(), fn: opts.Progress}); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInput, path, err)
	}
	copy(res.SHA256[:], h.Sum(nil))
	if !opts.Force {
		name, ok, err := r.FindOriginal(ctx, res.SHA256)
		if err != nil {
			return nil, err
		}
		if ok {
			res.Existing = name
			return res, nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInput, path, err)
	}

	var w *repo.Writer
	if opts.DryRun {
		w, err = r.NewDryWriter(ctx)
	} else {
		w, err = r.NewWriter(ctx)
	}
	if err != nil {
		return nil, err
	}
	defer w.Close(context.WithoutCancel(ctx))

	sink := &storeSink{ctx: ctx, w: w}
	in := &progressReader{r: f, phase: "store", total: fi.Size(), fn: opts.Progress}
	up, err := recompress.Unpack(ctx, bufio.NewReaderSize(in, 1<<20), sink,
		recompress.Options{Name: filepath.Base(path)})
	if err != nil {
		return nil, err
	}
	if up.SHA256 != res.SHA256 {
		return nil, fmt.Errorf("%w: %s changed while it was read", ErrInput, path)
	}
	recipe, err := up.Recipe.MarshalBinary()
	if err != nil {
		return nil, err
	}
	summary, err := json.Marshal(up.Summary)
	if err != nil {
		return nil, err
	}
	m := &repo.Manifest{
		Name: filepath.Base(path), Size: uint64(fi.Size()), SHA256: hex.EncodeToString(res.SHA256[:]),
		ModTime: fi.ModTime().UTC(), Ingested: time.Now().UTC(), Host: opts.Host,
		Site: siteOf(path, opts.Site, up.Summary.Realm), BackupTime: BackupTime(path, fi), Tags: opts.Tags,
		Recipe: recipe, Summary: summary,
	}
	res.Site, res.Made = m.Site, m.BackupTime
	m.Streams = sink.refs(len(up.Recipe.Streams))
	for _, wn := range up.Warnings {
		m.Damaged = append(m.Damaged, wn.Error())
	}
	id, err := w.Commit(ctx, m, res.SHA256)
	if err != nil {
		return nil, err
	}
	res.Snapshot, res.Summary, res.Warnings, res.Stats = id, up.Summary, up.Warnings, m.Stats
	return res, nil
}

// ClassOf is the chunking class of a stream kind.
func ClassOf(k recompress.Kind) string {
	switch k {
	case recompress.KindSQL, recompress.KindPGData, recompress.KindJSON:
		return repo.ClassText
	}
	return repo.ClassBulk
}

// storeSink is the recompress.Sink of an ingest: each canonical stream
// goes to a repo.StreamWriter, which cuts chunks at record boundaries (tar
// members), so an upload added to the tar does not change the chunks of
// the uploads around it.
type storeSink struct {
	ctx context.Context
	w   *repo.Writer

	mu      sync.Mutex
	streams []*repo.StreamWriter // by stream number
}

// Stream implements recompress.Sink.
func (s *storeSink) Stream(i int, k recompress.Kind) (io.WriteCloser, error) {
	sw, err := s.w.NewStream(s.ctx, uint8(k), ClassOf(k))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.streams) <= i {
		s.streams = append(s.streams, nil)
	}
	s.streams[i] = sw
	return sw, nil
}

// refs are the references of the first n streams, all closed.
func (s *storeSink) refs(n int) []repo.StreamRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]repo.StreamRef, n)
	for i := 0; i < n && i < len(s.streams); i++ {
		if s.streams[i] != nil {
			out[i] = s.streams[i].Ref()
		}
	}
	return out
}

// ErrVerify reports a restore whose bytes do not have the recorded SHA-256.
var ErrVerify = errors.New("restored bytes do not match the recorded SHA-256")

// recipeOf decodes a snapshot's recipe.
func recipeOf(r *repo.Repo, snap *repo.Snapshot) (*recompress.Recipe, error) {
	// The role first: only the master opens chunk contents; another key
	// would fail deep inside the rebuild.
	if r.Role() != crypto.RoleMaster {
		return nil, fmt.Errorf("%w: restoring needs the master key", repo.ErrPermission)
	}
	if err := snap.Usable(); err != nil {
		return nil, err
	}
	if snap.Manifest == nil {
		return nil, fmt.Errorf("snapshot %s: the manifest is not open (needs the master key)", snap.ID.Short())
	}
	var rc recompress.Recipe
	if err := rc.UnmarshalBinary(snap.Manifest.Recipe); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
	}
	if len(rc.Streams) != len(snap.Manifest.Streams) {
		return nil, fmt.Errorf("snapshot %s: the recipe has %d streams, the manifest %d", snap.ID.Short(), len(rc.Streams), len(snap.Manifest.Streams))
	}
	return &rc, nil
}

// streamOpener returns the opener Pack and Export use, closing the
// streams it opened when done is called.
func streamOpener(ctx context.Context, r *repo.Repo, snap *repo.Snapshot) (func(int, recompress.Kind) (io.Reader, error), func()) {
	var opened []io.Closer
	open := func(i int, k recompress.Kind) (io.Reader, error) {
		ref := snap.Manifest.Streams[i]
		if recompress.Kind(ref.Kind) != k {
			return nil, fmt.Errorf("snapshot %s: stream %d is %v, the recipe wants %v", snap.ID.Short(), i, recompress.Kind(ref.Kind), k)
		}
		rc, err := r.OpenStream(ctx, ref)
		if err != nil {
			return nil, err
		}
		opened = append(opened, rc)
		return bufio.NewReaderSize(rc, 256<<10), nil
	}
	return open, func() {
		for _, c := range opened {
			_ = c.Close() // readers: nothing to lose
		}
	}
}

type progressKey struct{}

// WithProgress returns a context under which Restore, RestoreFile and
// Drill report how far they got to fn instead of to the repository's
// listener (repo.SetProgress), unthrottled; nil silences them. A server
// that runs a drill beside downloads on one repository keeps each
// operation's progress apart this way.
func WithProgress(ctx context.Context, fn repo.Progress) context.Context {
	if fn == nil {
		fn = func(string, int64, int64) {}
	}
	return context.WithValue(ctx, progressKey{}, fn)
}

// reporter is where an operation under ctx reports its progress: the
// function WithProgress gave, else the repository's listener.
func reporter(ctx context.Context, r *repo.Repo) repo.Progress {
	if fn, ok := ctx.Value(progressKey{}).(repo.Progress); ok {
		return fn
	}
	return r.Report
}

// Restore writes a snapshot's original file to w and verifies its SHA-256;
// it returns the number of bytes written. When the hash does not match it
// returns ErrVerify (the caller must not trust what was written).
func Restore(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, w io.Writer) (uint64, error) {
	rc, err := recipeOf(r, snap)
	if err != nil {
		return 0, err
	}
	open, done := streamOpener(ctx, r, snap)
	defer done()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h), report: reporter(ctx, r), total: int64(snap.Manifest.Size)}
	if err := recompress.Pack(ctx, rc, open, cw); err != nil {
		return cw.n, fmt.Errorf("snapshot %s: %w", snap.ID.Short(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != snap.Manifest.SHA256 {
		return cw.n, fmt.Errorf("snapshot %s: %w (got %s, recorded %s)", snap.ID.Short(), ErrVerify, got[:16], snap.Manifest.SHA256[:16])
	}
	return cw.n, nil
}

// RestoreFile restores a snapshot into the file path: it writes a
// temporary file beside it, syncs it, verifies the SHA-256, and only then
// gives it the final name. Nothing is left behind on failure.
func RestoreFile(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, path string) (uint64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".larder-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			// The error to report is the restore's; the partial file goes.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := Restore(ctx, r, snap, bw)
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if !snap.Manifest.ModTime.IsZero() {
		if err := os.Chtimes(tmp, snap.Manifest.ModTime, snap.Manifest.ModTime); err != nil {
			return n, fmt.Errorf("%s: setting the modification time: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return n, err
	}
	ok = true
	return n, nil
}

// Export writes a snapshot's canonical form into dir (restore --canonical):
// see recompress.Export for the files, their modes and opts.
func Export(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, dir string, opts recompress.ExportOptions) ([]string, error) {
	rc, err := recipeOf(r, snap)
	if err != nil {
		return nil, err
	}
	open, done := streamOpener(ctx, r, snap)
	defer done()
	return recompress.Export(ctx, rc, open, dir, snap.Manifest.Name, opts)
}

type countingWriter struct {
	w io.Writer
	n uint64
	// report, when set, hears of the bytes written so far of total.
	report func(phase string, done, total int64)
	total  int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	if c.report != nil {
		c.report("restore", int64(c.n), c.total)
	}
	return n, err
}
