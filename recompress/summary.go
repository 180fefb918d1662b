package recompress

import (
	"bytes"
	"io"
	"path"
	"sort"
	"strings"
)

// Summary describes a backup's content, computed while it is unpacked, for
// the snapshot manifest: what the streams hold, how each compressed layer
// was rebuilt, the database tables with their rows, and the tar contents.
type Summary struct {
	Streams []StreamSummary `json:"streams"`
	Layers  []LayerSummary  `json:"layers"`
	Tables  []TableRows     `json:"tables,omitempty"`
	Tar     *TarSummary     `json:"tar,omitempty"`
	// Exact is set when an engine rebuilds every compressed layer, so all
	// of the backup deduplicates; false when some bytes are verbatim.
	Exact bool `json:"exact"`
	// Realm is a Zulip export's realm (string_id in its realm.json), the
	// site the export belongs to; "" when there is none.
	Realm string `json:"realm,omitempty"`
}

// StreamSummary is one canonical stream.
type StreamSummary struct {
	Index int    `json:"index"`
	Kind  string `json:"kind"`
	Bytes uint64 `json:"bytes"`
}

// LayerSummary is one gzip member and how it is rebuilt.
type LayerSummary struct {
	Where  string `json:"where"`
	Engine string `json:"engine,omitempty"` // e.g. "gzip -1", "zlib -4 wbits=15 mem=8 default"
	Mode   string `json:"mode"`             // exact, partial, verbatim
	Bytes  uint64 `json:"bytes"`            // compressed bytes
	Exact  uint64 `json:"exact"`            // of which the engine rebuilds
}

// TableRows is a table of a pg_dump and its rows (COPY data lines).
type TableRows struct {
	Table string `json:"table"`
	Rows  uint64 `json:"rows"`
}

// TarSummary counts the members of the outermost tar.
type TarSummary struct {
	Members int         `json:"members"`
	Bytes   uint64      `json:"bytes"`
	ByTop   []TopFolder `json:"by_top"`
}

// TopFolder is the share of a tar's first path element (e.g. "uploads").
type TopFolder struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
	Bytes   uint64 `json:"bytes"`
}

type summary struct {
	realm  *realmWatcher // the first realm.json seen
	layers []LayerSummary
	tables map[string]uint64
	order  []string
	tars   []*tarStats
}

func newSummary() *summary { return &summary{tables: map[string]uint64{}} }

func (s *summary) addRows(table string, n uint64) {
	if _, ok := s.tables[table]; !ok {
		s.order = append(s.order, table)
	}
	s.tables[table] += n
}

// observer returns a writer that watches a leaf stream's bytes.
func (s *summary) observer(k Kind, name string) io.Writer {
	switch k {
	case KindSQL:
		return &sqlCounter{s: s}
	case KindPGData:
		// A directory-format data file is the data of one COPY block,
		// ended by a "\." line.
		return &sqlCounter{s: s, table: "file " + path.Base(strings.TrimSuffix(name, ".gz"))}
	}
	return io.Discard
}

// memberObserver watches the data of a plain tar member: a pg_dump SQL
// file (Discourse before v1.6) is counted like an SQL stream.
func (s *summary) memberObserver(name string) io.Writer {
	if path.Base(name) == "realm.json" && s.realm == nil {
		s.realm = &realmWatcher{}
		return s.realm
	}
	return &sniffer{s: s}
}

// realmWatcher finds the realm's string_id in a Zulip realm.json: the
// first "string_id" key within its first maxRealmScan bytes (the realm
// table comes first), in bounded memory. It keeps the tail of each write
// so a key split between writes is still found.
type realmWatcher struct {
	seen  int64
	tail  []byte
	found bool
	id    string
}

const (
	maxRealmScan = 1 << 20
	maxRealmID   = 64
)

var realmKey = []byte(`"string_id"`)

func (w *realmWatcher) Write(p []byte) (int, error) {
	n := len(p)
	if w.found || w.seen > maxRealmScan {
		return n, nil
	}
	w.seen += int64(n)
	buf := append(w.tail, p[:min(len(p), maxRealmScan)]...)
	if i := bytes.Index(buf, realmKey); i >= 0 {
		if id, ok := jsonStringAfterColon(buf[i+len(realmKey):]); ok {
			w.found, w.id = true, id
			w.tail = nil
			return n, nil
		}
		// The value may be in the next write: keep from the key on.
		w.tail = append([]byte(nil), buf[i:min(len(buf), i+len(realmKey)+maxRealmID+16)]...)
		return n, nil
	}
	keep := min(len(buf), len(realmKey)-1)
	w.tail = append(w.tail[:0:0], buf[len(buf)-keep:]...)
	return n, nil
}

// jsonStringAfterColon reads `: "value"` (simple characters only, at most
// maxRealmID of them).
func jsonStringAfterColon(b []byte) (string, bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != ':' {
		return "", false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || end > maxRealmID || bytes.IndexByte(b[1:1+end], '\\') >= 0 {
		return "", false
	}
	return string(b[1 : 1+end]), true
}

// sniffer decides from a member's first bytes whether it is pg_dump SQL.
type sniffer struct {
	s    *summary
	head []byte
	w    io.Writer // decided
}

func (f *sniffer) Write(p []byte) (int, error) {
	if f.w != nil {
		return f.w.Write(p)
	}
	need := len(sqlMagic) - len(f.head)
	if len(p) < need {
		f.head = append(f.head, p...)
		return len(p), nil
	}
	f.head = append(f.head, p[:need]...)
	f.w = io.Discard
	if bytes.Equal(f.head, sqlMagic) {
		f.w = &sqlCounter{s: f.s}
		if _, err := f.w.Write(f.head); err != nil {
			return 0, err
		}
	}
	if _, err := f.w.Write(p[need:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

var sqlMagic = []byte("--\n-- PostgreSQL database dump")

// sqlCounter counts the data lines of each COPY block of pg_dump SQL.
type sqlCounter struct {
	s     *summary
	line  []byte // the start of the current line (bounded)
	long  bool   // the current line is longer than kept
	table string // inside COPY data for this table
	rows  uint64
}

const maxLineKept = 1024

func (c *sqlCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.keep(p)
			break
		}
		c.keep(p[:i])
		c.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (c *sqlCounter) keep(p []byte) {
	if room := maxLineKept - len(c.line); room > 0 {
		c.line = append(c.line, p[:min(len(p), room)]...)
	}
	if len(c.line)+len(p) > maxLineKept {
		c.long = true
	}
}

func (c *sqlCounter) endLine() {
	line := c.line
	if c.table != "" {
		if !c.long && string(line) == `\.` {
			c.s.addRows(c.table, c.rows)
			c.table, c.rows = "", 0
		} else {
			c.rows++
		}
	} else if bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, []byte(" FROM stdin;")) {
		rest := line[len("COPY "):]
		if i := bytes.IndexAny(rest, " ("); i > 0 {
			c.table = string(rest[:i])
		}
	}
	c.line = c.line[:0]
	c.long = false
}

// tarStats counts a tar's members.
type tarStats struct {
	members int
	bytes   uint64
	top     map[string]*TopFolder
	order   []string
}

func (s *summary) tar() *tarStats {
	t := &tarStats{top: map[string]*TopFolder{}}
	s.tars = append(s.tars, t)
	return t
}

func (t *tarStats) member(name string, typ byte, size int64) {
	t.members++
	t.bytes += uint64(size)
	top, _, _ := strings.Cut(strings.TrimPrefix(name, "./"), "/")
	f := t.top[top]
	if f == nil {
		f = &TopFolder{Name: top}
		t.top[top] = f
		t.order = append(t.order, top)
	}
	f.Members++
	f.Bytes += uint64(size)
}

// finish builds the Summary once the recipe is known.
func (s *summary) finish(rc *Recipe, streams []*streamOut) *Summary {
	out := &Summary{Exact: true}
	for i, st := range streams {
		out.Streams = append(out.Streams, StreamSummary{Index: i, Kind: st.kind.String(), Bytes: st.n})
	}
	// Every member started has ended when Unpack succeeds: each slot
	// next reserved is filled (gzlayer.go, record).
	out.Layers = s.layers
	for g := range gzipNodes(rc.Root) {
		for _, m := range g.Members {
			if m.Mode != ModeExact {
				out.Exact = false
			}
		}
		if g.Trailing > 0 {
			out.Exact = false
		}
	}
	if s.realm != nil && s.realm.found {
		out.Realm = s.realm.id
	}
	for _, t := range s.order {
		out.Tables = append(out.Tables, TableRows{Table: t, Rows: s.tables[t]})
	}
	sort.SliceStable(out.Tables, func(i, j int) bool { return out.Tables[i].Table < out.Tables[j].Table })
	if len(s.tars) > 0 {
		t := s.tars[0]
		ts := &TarSummary{Members: t.members, Bytes: t.bytes}
		for _, name := range t.order {
			ts.ByTop = append(ts.ByTop, *t.top[name])
		}
		out.Tar = ts
	}
	return out
}

// classify names the kind of a leaf layer from its first bytes; the tar
// member name only tells pg_dump's directory-format data files apart.
func classify(head []byte, name string) Kind {
	switch {
	case bytes.HasPrefix(head, sqlMagic):
		return KindSQL
	case strings.HasSuffix(name, ".dat.gz") || strings.HasSuffix(name, ".dat"):
		return KindPGData
	}
	t := bytes.TrimLeft(head, " \t\r\n")
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return KindJSON
	}
	return KindRaw
}
