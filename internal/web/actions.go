package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/repo"
)

// startDrill starts a drill of one snapshot (with PostgreSQL when the
// form asks and the server offers it) and shows its page.
func (s *Server) startDrill(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	if err := sn.Usable(); err != nil {
		s.errorPage(w, id, http.StatusConflict, err.Error())
		return
	}
	opts := s.opt.Drill
	opts.Postgres = s.opt.Postgres && req.PostFormValue("postgres") == "1"
	opts.Exec, opts.Keep, opts.ExecStdout, opts.ExecStderr = "", nil, nil, nil // never from the web
	target := sn.ID.Short() + " " + sn.Manifest.Name
	j, err := s.jobs.begin("drill", target, id, s.now())
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	j.link = "/snapshots/" + sn.ID.String()
	kind := "restore and SHA-256"
	if opts.Postgres {
		kind = "restore, SHA-256 and PostgreSQL load"
	}
	j.logf("drill of %s (%s)", target, kind)
	s.log.add(s, entry{Time: j.Started, User: id.user, Addr: id.addr, Action: "drill", Target: target, Result: "started (job " + j.ID + ")"})
	s.jobs.run(s.ctx, j, func(ctx context.Context, j *job) (string, error) {
		unlock, err := s.r.ReadLock(ctx)
		if err != nil {
			return "", err
		}
		defer unlock()
		rec, err := larder.Drill(larder.WithProgress(ctx, j.progress), s.r, sn, opts)
		if rec == nil {
			return "", err
		}
		logDrill(j, rec)
		if err != nil {
			return "", fmt.Errorf("the drill ran but its record was not stored: %w", err)
		}
		if !rec.OK {
			return "", errors.New("drill FAILED: " + drillLine(rec))
		}
		return "drill ok: " + drillLine(rec), nil
	}, s.jobDone)
	http.Redirect(w, req, "/jobs/"+j.ID, http.StatusSeeOther)
}

// jobDone puts a job's end in the activity log.
func (s *Server) jobDone(j *job) {
	v := j.view()
	s.log.add(s, entry{Time: v.Ended, User: v.User, Addr: j.Addr, Action: v.Kind, Target: v.Target, Result: v.State + ": " + v.Result})
}

func logDrill(j *job, rec *repo.DrillRecord) {
	if rec.Error != "" {
		j.logf("error: %s", rec.Error)
	}
	if pg := rec.Postgres; pg != nil {
		j.logf("%s: %d tables, %d rows", pg.Version, pg.Tables, pg.Rows)
		for _, m := range pg.Mismatches {
			j.logf("mismatch: %s", m)
		}
	}
	if z := rec.Zulip; z != nil {
		for _, p := range z.Problems {
			j.logf("zulip: %s", p)
		}
	}
}

// drillLine sums a drill record up in one line, as larder drill prints it.
func drillLine(rec *repo.DrillRecord) string { return larder.DrillSummary(rec) }

func (s *Server) jobPage(w http.ResponseWriter, req *http.Request, id *identity) {
	j := s.jobs.get(req.PathValue("job"))
	if j == nil {
		s.errorPage(w, id, http.StatusNotFound, "no such action (the server keeps the last ones since it started)")
		return
	}
	v := j.view()
	s.render(w, id, http.StatusOK, "job", strings.ToUpper(v.Kind[:1])+v.Kind[1:], v)
}

func (s *Server) apiJob(w http.ResponseWriter, req *http.Request, id *identity) {
	j := s.jobs.get(req.PathValue("job"))
	if j == nil {
		s.apiError(w, http.StatusNotFound, "no such action")
		return
	}
	writeJSON(w, http.StatusOK, j.view())
}

func (s *Server) ingestPage(w http.ResponseWriter, req *http.Request, id *identity) {
	s.render(w, id, http.StatusOK, "ingest", "Ingest a backup", nil)
}

// ingest takes an uploaded backup: the form's fields come in order (csrf,
// site, file), the token is checked before the file is read, and the file
// is streamed to a temporary folder on disk (bounded memory), then
// ingested by a job with the master key and removed.
func (s *Server) ingest(w http.ResponseWriter, req *http.Request, id *identity) {
	if s.opt.MaxUpload > 0 {
		req.Body = http.MaxBytesReader(w, req.Body, s.opt.MaxUpload+maxForm)
	}
	mr, err := req.MultipartReader()
	if err != nil {
		s.errorPage(w, id, http.StatusBadRequest, "the upload is not a multipart form")
		return
	}
	site, part, err := uploadFields(mr, id)
	if err != nil {
		s.errorPage(w, id, statusOfUpload(err), err.Error())
		return
	}
	name := safeFileName(part.FileName())
	j, err := s.jobs.begin("ingest", name, id, s.now())
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	path, size, err := s.receive(part, name, j)
	if err != nil {
		s.jobs.end(j, "", err)
		s.jobDone(j)
		s.errorPage(w, id, statusOfUpload(err), err.Error())
		return
	}
	j.logf("received %s (%s); ingesting with the master key", name, human(uint64(size)))
	s.jobs.run(s.ctx, j, func(ctx context.Context, j *job) (string, error) {
		defer func() { _ = os.RemoveAll(filepath.Dir(path)) }() // a temporary copy
		res, err := larder.Ingest(ctx, s.r, path, larder.IngestOptions{Host: s.opt.Drill.Host, Site: site, Progress: j.progress})
		if err != nil {
			return "", err
		}
		if res.Existing != "" {
			j.link = "/snapshots/" + res.Existing
			return "already stored as snapshot " + short(res.Existing) + ": nothing new", nil
		}
		j.link = "/snapshots/" + res.Snapshot.String()
		return fmt.Sprintf("stored as snapshot %s (site %s), %s new", res.Snapshot.Short(), res.Site, human(res.Stats.NewStored)), nil
	}, s.jobDone)
	http.Redirect(w, req, "/jobs/"+j.ID, http.StatusSeeOther)
}

func short(s string) string { return s[:min(8, len(s))] }

var errUpload = errors.New("upload")

func statusOfUpload(err error) int {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errBusy):
		return http.StatusConflict
	case errors.Is(err, errUpload):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// uploadFields reads the form up to its file: the CSRF token first, then
// an optional site (a valid site name).
func uploadFields(mr *multipart.Reader, id *identity) (string, *multipart.Part, error) {
	csrfOK, site := false, ""
	for {
		p, err := mr.NextPart()
		if err != nil {
			return "", nil, fmt.Errorf("%w: the form has no file", errUpload)
		}
		switch p.FormName() {
		case "csrf":
			v, _ := io.ReadAll(io.LimitReader(p, 256))
			csrfOK = id.validCSRF(string(v))
		case "site":
			v, _ := io.ReadAll(io.LimitReader(p, repo.MaxSite+1))
			site = strings.TrimSpace(string(v))
			if site != "" {
				if err := repo.ValidSite(site); err != nil {
					return "", nil, fmt.Errorf("%w: site %w", errUpload, err)
				}
			}
		case "file":
			if !csrfOK {
				return "", nil, fmt.Errorf("%w: the form's security token is missing or stale (it must come before the file)", errUpload)
			}
			return site, p, nil
		}
	}
}

// receive streams the file to a fresh temporary folder, under its own
// name (ingest reads the site and backup time from it).
func (s *Server) receive(part io.Reader, name string, j *job) (string, int64, error) {
	dir, err := os.MkdirTemp(s.opt.UploadDir, "larder-upload-")
	if err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = os.RemoveAll(dir) // the error to report is the open's
		return "", 0, err
	}
	n, err := io.Copy(f, &progressReader{r: part, fn: j.progress})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: the file is empty", errUpload)
	}
	if err != nil {
		_ = os.RemoveAll(dir) // a partial upload goes
		return "", 0, fmt.Errorf("receiving %s: %w", name, err)
	}
	return path, n, nil
}

// progressReader reports an upload's bytes as the phase "upload".
type progressReader struct {
	r    io.Reader
	n    int64
	last time.Time
	fn   func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err != nil {
		p.last = now
		p.fn("upload", p.n, 0)
	}
	return n, err
}
