package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/larder/larder/repo"
)

// auditResult is the last audit the server ran, kept in the state folder
// (auditFile) so that a restart still shows it.
type auditResult struct {
	Time      time.Time      `json:"time"`
	User      string         `json:"user"`
	OK        bool           `json:"ok"`
	Snapshots int            `json:"snapshots"`
	Writers   int            `json:"writers"`
	Drills    int            `json:"drills"`
	Objects   int            `json:"objects"`
	Chunks    int            `json:"chunks"`
	Problems  []repo.Problem `json:"problems,omitempty"`
	Warnings  []repo.Problem `json:"warnings,omitempty"`
}

const (
	auditFile = "audit.json"
	maxAudit  = 16 << 20
)

func (s *Server) loadAudit() *auditResult {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if s.lastAudit != nil {
		return s.lastAudit
	}
	path := filepath.Join(s.opt.StateDir, auditFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() > maxAudit {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var a auditResult
	if json.Unmarshal(b, &a) != nil {
		return nil
	}
	s.lastAudit = &a
	return s.lastAudit
}

func (s *Server) auditPage(w http.ResponseWriter, req *http.Request, id *identity) {
	s.render(w, id, http.StatusOK, "audit", "Audit", s.loadAudit())
}

// startAudit runs larder audit as a job (master or audit key: it reads
// and checks, and changes nothing).
func (s *Server) startAudit(w http.ResponseWriter, req *http.Request, id *identity) {
	j, err := s.jobs.begin("audit", "the repository", id, s.now())
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	j.link = "/audit"
	s.log.add(s, entry{Time: j.Started, User: id.user, Addr: id.addr, Action: "audit", Target: "the repository", Result: "started (job " + j.ID + ")"})
	s.jobs.run(s.ctx, j, func(ctx context.Context, j *job) (string, error) {
		j.logf("checking signatures, chains, drill records, chunk lists and that every chunk is stored")
		rep, err := s.r.Audit(ctx)
		if err != nil {
			return "", err
		}
		a := &auditResult{Time: s.now(), User: j.User, OK: rep.OK(), Snapshots: rep.Snapshots, Writers: rep.Writers,
			Drills: len(rep.Drills), Problems: rep.Problems, Warnings: rep.Warnings}
		if rep.Check != nil {
			a.Objects, a.Chunks = rep.Check.Objects, rep.Check.Blobs
		}
		for _, p := range rep.Problems {
			j.logf("problem: %s", p)
		}
		s.auditMu.Lock()
		s.lastAudit = a
		s.auditMu.Unlock()
		if b, err := json.Marshal(a); err == nil {
			if err := writeFileAtomic(filepath.Join(s.opt.StateDir, auditFile), b); err != nil {
				s.logf("keeping the audit result: %v", err)
			}
		}
		if !a.OK {
			return "", fmt.Errorf("audit found %d problems", len(a.Problems))
		}
		return fmt.Sprintf("audit ok: %d snapshots of %d writers, %d drill records", a.Snapshots, a.Writers, a.Drills), nil
	}, s.jobDone)
	http.Redirect(w, req, "/jobs/"+j.ID, http.StatusSeeOther)
}
