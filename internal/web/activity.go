package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// activityFile is the server's own log in the state folder: one JSON
// object a line, appended, never rewritten (O_APPEND, mode 0600).
const activityFile = "activity.jsonl"

// Bounds on what the activity page reads and shows.
const (
	maxActivityRead = 4 << 20 // the log's last bytes
	maxEvents       = 1000
)

// entry is one line of the activity page: the server's own actions, and
// what the repository records (ingests, drills, forgets).
type entry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`           // who: a user, "token", a key's name
	Addr   string    `json:"addr,omitempty"` // from where: a client address, a host
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Result string    `json:"result,omitempty"`
	Source string    `json:"-"` // "server" or "repository"
}

type activityLog struct {
	mu   sync.Mutex
	path string
}

// add appends e; a failure goes to the server's log (the action it
// records has happened).
func (l *activityLog) add(s *Server, e entry) {
	if err := l.append(e); err != nil {
		s.logf("activity log %s: %v", l.path, err)
	}
}

func (l *activityLog) append(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close() // the write's error is the one to report
		return err
	}
	return f.Close()
}

// read returns the log's entries from its last maxActivityRead bytes.
func (l *activityLog) read() ([]entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	skipFirst := false
	if off := fi.Size() - maxActivityRead; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
		skipFirst = true // a line cut in two
	}
	var out []entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if skipFirst {
			skipFirst = false
			continue
		}
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			e.Source = "server"
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// activity merges the server's log with the repository's records, newest
// first: each snapshot's ingest (its key, host and time), each drill
// (host, time, result) and each forget record.
func (s *Server) activity(ctx context.Context) ([]entry, error) {
	events, err := s.log.read()
	if err != nil {
		return nil, fmt.Errorf("the activity log: %w", err)
	}
	c, err := s.readCatalog(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, sn := range c.snaps {
		e := entry{Time: sn.Envelope.Claimed, User: "key " + sn.Envelope.Writer.String()[:8], Action: "ingest", Source: "repository"}
		if n := c.names[sn.Envelope.Writer]; n != "" {
			e.User = "key " + n
		}
		if m := sn.Manifest; m != nil {
			e.Addr, e.Target = m.Host, sn.ID.Short()+" "+m.Name
			e.Result = fmt.Sprintf("site %s, %s, %s new", siteLabel(m.Site), human(m.Size), human(m.Stats.NewStored))
		}
		if sn.Rejected != "" {
			e.Result = "REJECTED: " + sn.Rejected
		}
		events = append(events, e)
	}
	for _, d := range c.drillsOf(nil) {
		res := "ok: " + drillLine(d.DrillRecord)
		if !d.OK {
			res = "FAILED: " + drillLine(d.DrillRecord)
		}
		events = append(events, entry{Time: d.Time, User: "master key", Addr: d.Host, Action: "drill",
			Target: d.Snapshot.Short() + " (site " + siteLabel(d.Site) + ")", Result: res, Source: "repository"})
	}
	forgets, err := s.r.ForgetRecords(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range forgets {
		ids := make([]string, 0, len(f.Removed))
		for _, r := range f.Removed {
			ids = append(ids, r.ID.Short())
		}
		events = append(events, entry{Time: f.Time, User: "master key", Action: "forget", Target: strings.Join(ids, " "),
			Result: fmt.Sprintf("%d snapshots removed", len(f.Removed)), Source: "repository"})
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.After(events[j].Time) })
	if len(events) > maxEvents {
		events = events[:maxEvents]
	}
	return events, nil
}

func siteLabel(s string) string {
	if s == "" {
		return noSite
	}
	return s
}
