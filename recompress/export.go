package recompress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ExportOptions are Export's choices.
type ExportOptions struct {
	// Overwrite replaces files that exist at the paths Export writes;
	// without it Export refuses (an *ExistError) before writing anything.
	Overwrite bool
}

// ExistError is Export's refusal to replace a file that exists (without
// ExportOptions.Overwrite).
type ExistError struct{ Path string }

func (e *ExistError) Error() string { return e.Path + " exists" }
func (e *ExistError) Unwrap() error { return fs.ErrExist }

// Export writes the canonical form of a backup into the folder dir, for a
// person to open: the backup without its outer gzip layer (a plain .tar,
// byte for byte the one inside the original) and, next to it, the plain
// content of every gzip member inside (dump.sql for dump.sql.gz,
// db/3489.dat for db/3489.dat.gz). name is the backup's file name. It
// returns the paths written, relative to dir.
//
// The files hold what the backup holds (e-mail addresses, password
// hashes): they are mode 0600, and the folders Export creates 0700. Each
// file is written under a temporary name in its folder and renamed only
// once every file is complete: a failed export (but for a failing rename)
// leaves none of its files behind, and the files it would replace
// unchanged.
func Export(ctx context.Context, rc *Recipe, open func(i int, k Kind) (io.Reader, error), dir, name string, opts ExportOptions) ([]string, error) {
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	e := planExport(rc, dir, name)
	if !opts.Overwrite {
		for _, p := range e.tees {
			if err := e.refuseExisting(p); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &packer{ctx: ctx, rc: rc, open: open, readers: make([]io.Reader, len(rc.Streams)), tee: e.tee}
	var out io.Writer = io.Discard
	if path, ok := e.tees[nil]; ok {
		f, err := e.create(path)
		if err != nil {
			return nil, err
		}
		out = f
	}
	err := p.node(rc.Root, out)
	if cerr := e.finish(err == nil, opts.Overwrite); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return e.paths, nil
}

// planExport decides which node's output goes to which file.
func planExport(rc *Recipe, dir, name string) *exporter {
	e := &exporter{dir: dir, tees: map[Node]string{}}
	base := safeName(name)
	if base == "" {
		base = "backup"
	}
	switch root := rc.Root.(type) {
	case *Gzip:
		inner := strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".tgz")
		if inner == base {
			inner = base + ".out"
		}
		if strings.HasSuffix(base, ".tgz") {
			inner += ".tar"
		}
		if root.Content != nil {
			e.tees[root] = inner
			e.plan(root.Content, "")
		}
	default:
		e.tees[nil] = base
		e.plan(root, "")
	}
	return e
}

type exporter struct {
	dir   string
	tees  map[Node]string // gzip node → file of its content (nil key: the root's output)
	files []exportFile
	paths []string
}

// exportFile is a file being written under a temporary name.
type exportFile struct {
	f    *os.File
	path string // its name when done
}

// plan names the files of the gzip layers under n: a member's content
// goes to its name without ".gz", under prefix.
func (e *exporter) plan(n Node, prefix string) {
	switch n := n.(type) {
	case *Tar:
		for _, p := range n.Parts {
			g, ok := p.Child.(*Gzip)
			if !ok || g.Content == nil {
				continue
			}
			member := safeName(p.Name)
			if member == "" {
				member = "member"
			}
			file := strings.TrimSuffix(member, ".gz")
			switch {
			case strings.HasSuffix(member, ".tgz"):
				file = strings.TrimSuffix(member, ".tgz") + ".tar"
			case file == member:
				file += ".out"
			}
			file = path.Join(prefix, file)
			e.tees[g] = file
			e.plan(g.Content, file+".d")
		}
	case *Gzip:
		if n.Content != nil {
			e.plan(n.Content, prefix)
		}
	}
}

func (e *exporter) tee(n Node) (io.Writer, error) {
	p, ok := e.tees[n]
	if !ok || n == nil {
		return nil, nil
	}
	return e.create(p)
}

// refuseExisting fails when something is at p already.
func (e *exporter) refuseExisting(p string) error {
	full := filepath.Join(e.dir, filepath.FromSlash(p))
	if _, err := os.Lstat(full); err == nil {
		return &ExistError{Path: full}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// create starts the file for p, under a temporary name (mode 0600).
func (e *exporter) create(p string) (*os.File, error) {
	if slices.Contains(e.paths, p) {
		return nil, fmt.Errorf("export: two members are written to %s", p)
	}
	full := filepath.Join(e.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(full), "."+filepath.Base(full)+".larder-*")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e.files = append(e.files, exportFile{f, full})
	e.paths = append(e.paths, p)
	return f, nil
}

// finish closes the files and, when ok, gives each its name (refusing to
// replace one that appeared meanwhile unless overwrite); else, or when
// that fails, it removes the temporary files left.
func (e *exporter) finish(ok, overwrite bool) error {
	var first error
	for _, x := range e.files {
		if err := x.f.Sync(); err != nil && first == nil {
			first = err
		}
		if err := x.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	for _, x := range e.files {
		if ok && first == nil && !overwrite {
			if _, err := os.Lstat(x.path); err == nil {
				first = &ExistError{Path: x.path}
			}
		}
		if ok && first == nil {
			first = os.Rename(x.f.Name(), x.path)
		}
		if !ok || first != nil {
			// Gone already once renamed; the error to report is first.
			_ = os.Remove(x.f.Name())
		}
	}
	e.files = nil
	return first
}

// safeName turns a member name into a relative path that stays inside the
// export folder.
func safeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p == "" || p == "." || p == ".." {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}
