package web

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A job is an action the page started (a drill, an ingest, an audit): it
// runs on its own, one at a time, and its page follows its progress and
// log. Jobs live in memory; their starts and results are in the activity
// log.
type job struct {
	ID      string
	Kind    string // "drill", "ingest", "audit"
	Target  string
	User    string
	Addr    string
	Started time.Time

	mu     sync.Mutex
	phase  string
	done   int64
	total  int64
	lines  []string
	ended  time.Time
	state  string // "running", "ok", "failed"
	result string // one line
	link   string // where the result is (a snapshot's page)
}

// maxJobLines bounds a job's log; maxJobs the jobs kept.
const (
	maxJobLines = 500
	maxJobs     = 50
)

// progress is a repo.Progress for the job's restores and ingests.
func (j *job) progress(phase string, done, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if phase != j.phase {
		j.lines = appendLine(j.lines, fmt.Sprintf("%s %s", time.Now().UTC().Format("15:04:05"), phase))
	}
	j.phase, j.done, j.total = phase, done, total
}

func (j *job) logf(format string, a ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = appendLine(j.lines, time.Now().UTC().Format("15:04:05")+" "+fmt.Sprintf(format, a...))
}

func appendLine(lines []string, l string) []string {
	if len(lines) >= maxJobLines {
		lines = append(lines[:0:0], lines[len(lines)-maxJobLines+1:]...)
	}
	return append(lines, l)
}

// jobView is a job as its page and /api/jobs/{job} show it.
type jobView struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Target   string    `json:"target"`
	User     string    `json:"user"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	State    string    `json:"state"`
	Phase    string    `json:"phase,omitempty"`
	Done     int64     `json:"done"`
	Total    int64     `json:"total"`
	Percent  int64     `json:"percent"`
	Log      []string  `json:"log"`
	Result   string    `json:"result,omitempty"`
	Link     string    `json:"link,omitempty"`
	Finished bool      `json:"finished"`
}

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.ID, Kind: j.Kind, Target: j.Target, User: j.User, Started: j.Started, Ended: j.ended,
		State: j.state, Phase: j.phase, Done: j.done, Total: j.total, Log: append([]string(nil), j.lines...),
		Result: j.result, Link: j.link, Finished: j.state != "running"}
	if j.total > 0 {
		v.Percent = j.done * 100 / j.total
	}
	return v
}

type jobRunner struct {
	mu      sync.Mutex
	running *job
	recent  []*job // newest last
	wg      sync.WaitGroup
}

func newJobRunner() *jobRunner { return &jobRunner{} }

// errBusy: another action is running.
var errBusy = errors.New("another action is running: wait for it to end")

// begin reserves the one slot for a new job.
func (jr *jobRunner) begin(kind, target string, id *identity, now time.Time) (*job, error) {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	if jr.running != nil {
		return nil, fmt.Errorf("%w (%s %s)", errBusy, jr.running.Kind, jr.running.Target)
	}
	j := &job{ID: randomToken()[:16], Kind: kind, Target: target, User: id.user, Addr: id.addr, Started: now, state: "running"}
	jr.running = j
	jr.recent = append(jr.recent, j)
	if len(jr.recent) > maxJobs {
		jr.recent = jr.recent[len(jr.recent)-maxJobs:]
	}
	return j, nil
}

// run runs fn for j in the background; its error, or its result line,
// ends the job.
func (jr *jobRunner) run(ctx context.Context, j *job, fn func(context.Context, *job) (string, error), done func(*job)) {
	jr.wg.Add(1)
	go func() {
		defer jr.wg.Done()
		res, err := fn(ctx, j)
		jr.end(j, res, err)
		done(j)
	}()
}

// end records how j ended and frees the slot.
func (jr *jobRunner) end(j *job, result string, err error) {
	j.mu.Lock()
	j.ended = time.Now()
	j.state, j.result = "ok", result
	if err != nil {
		j.state, j.result = "failed", err.Error()
	}
	j.lines = appendLine(j.lines, j.ended.UTC().Format("15:04:05")+" "+j.state+": "+j.result)
	j.mu.Unlock()
	jr.mu.Lock()
	if jr.running == j {
		jr.running = nil
	}
	jr.mu.Unlock()
}

func (jr *jobRunner) get(id string) *job {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	for _, j := range jr.recent {
		if j.ID == id {
			return j
		}
	}
	return nil
}

func (jr *jobRunner) recentViews() []jobView {
	jr.mu.Lock()
	jobs := append([]*job(nil), jr.recent...)
	jr.mu.Unlock()
	out := make([]jobView, 0, len(jobs))
	for i := len(jobs) - 1; i >= 0; i-- {
		out = append(out, jobs[i].view())
	}
	return out
}

func (jr *jobRunner) wait() { jr.wg.Wait() }
