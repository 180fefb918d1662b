package recompress

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Export writes the canonical form of a backup into the folder dir, for a
// person to open: the backup without its outer gzip layer (a plain .tar,
// byte for byte the one inside the original) and, next to it, the plain
// content of every gzip member inside (dump.sql for dump.sql.gz,
// db/3489.dat for db/3489.dat.gz). name is the backup's file name. It
// returns the paths written, relative to dir.
func Export(ctx context.Context, rc *Recipe, open func(i int, k Kind) (io.Reader, error), dir, name string) ([]string, error) {
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &exporter{dir: dir, tees: map[Node]string{}}
	base := safeName(name)
	if base == "" {
		base = "backup"
	}
	// Decide which node's output goes to which file.
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
	if cerr := e.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return e.paths, err
	}
	return e.paths, nil
}

type exporter struct {
	dir   string
	tees  map[Node]string // gzip node → file of its content (nil key: the root's output)
	files []*os.File
	paths []string
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

func (e *exporter) create(p string) (*os.File, error) {
	full := filepath.Join(e.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e.files = append(e.files, f)
	e.paths = append(e.paths, p)
	return f, nil
}

func (e *exporter) closeAll() error {
	var first error
	for _, f := range e.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
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
