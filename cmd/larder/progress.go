package main

import (
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/larder/larder/repo"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// A meter shows how far a long command got. On a terminal (standard
// error, without --quiet or --json) it draws one progress bar (schollz/
// progressbar: %, bytes, rate, time left) headed by the file N of M and
// the phase, fitted to the terminal's width so it never wraps; with
// --json it writes "status" lines (docs/JSON.md) at most once a second;
// otherwise (cron, pipes) it is silent. A nil *meter does nothing.
type meter struct {
	c     *cli.Context
	json  bool
	width int // of the terminal, for the bar

	mu           sync.Mutex
	bar          *progressbar.ProgressBar
	phase        string
	total        int64
	file         string
	fileN, files int
	start        time.Time // of the phase
	lastJSON     time.Time
}

// jsonStatusEvery bounds the rate of --json status lines.
const jsonStatusEvery = time.Second

// byteMeasured are the phases that count bytes (others count items).
var byteMeasured = map[string]bool{"hash": true, "store": true, "restore": true, "copy": true}

// newMeter returns the command's meter, or nil when nobody would see it.
func newMeter(c *cli.Context) *meter {
	if c.Bool("quiet") {
		return nil
	}
	if c.Bool("json") {
		return &meter{c: c, json: true}
	}
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil || w <= 0 {
		w = 80
	}
	return &meter{c: c, width: w}
}

// fileStart says which file of how many the next phases are about.
func (m *meter) fileStart(n, of int, name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
	m.file, m.fileN, m.files = name, n, of
}

// update is a repo.Progress: phase got done of total.
func (m *meter) update(phase string, done, total int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if phase != m.phase || total != m.total {
		m.clearLocked()
		m.phase, m.total, m.start = phase, total, time.Now()
	}
	if m.json {
		m.statusLocked(done, total)
		return
	}
	if m.bar == nil {
		m.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(m.c.App.ErrWriter),
			progressbar.OptionSetDescription(m.descriptionLocked()),
			progressbar.OptionShowBytes(byteMeasured[phase]),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(barWidth(m.width)),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	_ = m.bar.Set64(done) // drawing on the terminal: a failure there only loses the bar
}

// done clears the bar before results are printed.
func (m *meter) done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
}

func (m *meter) clearLocked() {
	if m.bar != nil {
		_ = m.bar.Clear() // as in update
		m.bar = nil
	}
	m.phase, m.total = "", 0
}

// barWidth leaves room on a line of the terminal's width for the
// description (at most a third of it) and the numbers beside the bar.
func barWidth(termWidth int) int {
	return max(termWidth-termWidth/3-48, 5)
}

// descriptionLocked is "[2/5] phase name", cut to a third of the line.
func (m *meter) descriptionLocked() string {
	d := m.phase
	if m.file != "" {
		d += " " + m.file
	}
	if m.files > 1 {
		d = "[" + strconv.Itoa(m.fileN) + "/" + strconv.Itoa(m.files) + "] " + d
	}
	limit := max(m.width/3, 8)
	if r := []rune(d); len(r) > limit {
		d = string(r[:limit-1]) + "…"
	}
	return d + " "
}

// statusJSON is a --json progress line.
type statusJSON struct {
	MessageType      string  `json:"message_type"` // "status"
	Action           string  `json:"action"`       // the command
	Phase            string  `json:"phase"`
	Unit             string  `json:"unit"` // "bytes" or "items"
	Done             int64   `json:"done"`
	Total            int64   `json:"total"`
	PercentDone      float64 `json:"percent_done"` // 0 to 1, as restic's
	SecondsElapsed   int64   `json:"seconds_elapsed"`
	SecondsRemaining int64   `json:"seconds_remaining,omitempty"`
	CurrentFile      string  `json:"current_file,omitempty"`
	FilesDone        int     `json:"files_done,omitempty"`
	TotalFiles       int     `json:"total_files,omitempty"`
}

func (m *meter) statusLocked(done, total int64) {
	now := time.Now()
	if now.Sub(m.lastJSON) < jsonStatusEvery {
		return
	}
	m.lastJSON = now
	s := statusJSON{MessageType: "status", Action: m.c.Command.Name, Phase: m.phase, Unit: "items", Done: done, Total: total,
		SecondsElapsed: int64(now.Sub(m.start) / time.Second), CurrentFile: m.file, TotalFiles: m.files}
	if m.files > 0 {
		s.FilesDone = m.fileN - 1
	}
	if byteMeasured[m.phase] {
		s.Unit = "bytes"
	}
	if total > 0 {
		s.PercentDone = float64(done) / float64(total)
		if done > 0 && done < total {
			el := now.Sub(m.start)
			s.SecondsRemaining = int64(time.Duration(float64(el)*float64(total-done)/float64(done)) / time.Second)
		}
	}
	_ = emit(m.c, s) // a lost status line is not the command's failure; the result lines report theirs
}

// showProgress makes r report its long operations on the command's meter
// and returns the function that ends it (clearing the bar).
func showProgress(c *cli.Context, r *repo.Repo) func() {
	m := newMeter(c)
	if m == nil {
		return func() {}
	}
	r.SetProgress(m.update)
	return func() {
		r.SetProgress(nil)
		m.done()
	}
}
