package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/larder/larder/repo"
)

// handler serves an authenticated request.
type handler func(w http.ResponseWriter, req *http.Request, id *identity)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("GET /favicon.ico", http.NotFound) // not sent to the login page
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.form(s.logout))

	m.HandleFunc("GET /{$}", s.page(s.sitesPage))
	m.HandleFunc("GET /sites/{site}", s.page(s.sitePage))
	m.HandleFunc("GET /snapshots/{id}", s.page(s.snapshotPage))
	m.HandleFunc("GET /snapshots/{id}/download", s.page(s.master1(s.downloadHandler)))
	m.HandleFunc("GET /snapshots/{id}/forget", s.page(s.master1(s.forgetPage)))
	m.HandleFunc("POST /snapshots/{id}/forget", s.form(s.master1(s.forget)))
	m.HandleFunc("POST /snapshots/{id}/drill", s.form(s.master1(s.startDrill)))
	m.HandleFunc("GET /jobs/{job}", s.page(s.jobPage))
	m.HandleFunc("GET /ingest", s.page(s.master1(s.ingestPage)))
	// The upload's CSRF token is its form's first field, checked by
	// ingest itself before a byte of the file is read.
	m.HandleFunc("POST /ingest", s.page(s.master1(s.ingest)))
	m.HandleFunc("GET /audit", s.page(s.auditPage))
	m.HandleFunc("POST /audit", s.form(s.startAudit))
	m.HandleFunc("GET /activity", s.page(s.activityPage))

	m.HandleFunc("GET /api/sites", s.api(s.apiSites))
	m.HandleFunc("GET /api/status", s.api(s.apiStatus))
	m.HandleFunc("GET /api/snapshots", s.api(s.apiSnapshots))
	m.HandleFunc("GET /api/snapshots/{id}", s.api(s.apiSnapshot))
	m.HandleFunc("GET /api/snapshots/{id}/download", s.api(s.master1(s.downloadHandler)))
	m.HandleFunc("GET /api/drills", s.api(s.apiDrills))
	m.HandleFunc("GET /api/jobs/{job}", s.api(s.apiJob))
	m.HandleFunc("/", s.page(func(w http.ResponseWriter, req *http.Request, id *identity) {
		s.errorPage(w, id, http.StatusNotFound, "no such page")
	}))
	s.mux = m
}

// page serves a signed-in user's page; others go to the login page.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		id := s.authenticate(req)
		if id == nil || id.token {
			http.Redirect(w, req, "/login", http.StatusSeeOther)
			return
		}
		h(w, req, id)
	}
}

// form serves a signed-in user's state-changing form: its csrf field must
// be the session's token.
func (s *Server) form(h handler) http.HandlerFunc {
	return s.page(func(w http.ResponseWriter, req *http.Request, id *identity) {
		req.Body = http.MaxBytesReader(w, req.Body, maxForm)
		if !id.validCSRF(req.PostFormValue("csrf")) {
			s.errorPage(w, id, http.StatusForbidden, "the form's security token is missing or stale: reload the page and try again")
			return
		}
		h(w, req, id)
	})
}

// maxForm bounds a form's body (all but uploads).
const maxForm = 64 << 10

// api serves a signed-in user's or a script's API request.
func (s *Server) api(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		id := s.authenticate(req)
		if id == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="larder"`)
			s.apiError(w, http.StatusUnauthorized, "sign in or send Authorization: Bearer TOKEN")
			return
		}
		h(w, req, id)
	}
}

// master1 refuses what only a master-key server does (downloads,
// actions) on an audit-key server.
func (s *Server) master1(h handler) handler {
	return func(w http.ResponseWriter, req *http.Request, id *identity) {
		if !s.master() {
			msg := "this server holds an audit key: it shows metadata, and cannot download or act"
			if strings.HasPrefix(req.URL.Path, "/api/") {
				s.apiError(w, http.StatusForbidden, msg)
			} else {
				s.errorPage(w, id, http.StatusForbidden, msg)
			}
			return
		}
		h(w, req, id)
	}
}

// view is what every page template gets: the page's data and who looks.
type view struct {
	Title    string
	User     string
	CSRF     string
	Master   bool
	Postgres bool
	Data     any
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		pages[page] = t
	}
	return pages, nil
}

// render writes a page; the template runs into a buffer first, so a
// failure is a clean error page, not half a page.
func (s *Server) render(w http.ResponseWriter, id *identity, status int, page, title string, data any) {
	v := view{Title: title, Data: data, Master: s.master(), Postgres: s.opt.Postgres}
	if id != nil && id.sess != nil {
		v.User, v.CSRF = id.user, id.sess.csrf
	}
	var b bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&b, "layout", v); err != nil {
		s.logf("page %s: %v", page, err)
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes()) // the client went away: nothing to do
}

func (s *Server) errorPage(w http.ResponseWriter, id *identity, status int, msg string) {
	s.render(w, id, status, "error", http.StatusText(status), msg)
}

// failPage reports err: not found, a key that may not, or a failure.
func (s *Server) failPage(w http.ResponseWriter, id *identity, err error) {
	s.errorPage(w, id, statusOf(err), err.Error())
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, repo.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, errBusy), errors.Is(err, repo.ErrLocked):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

var errNotFound = errors.New("not found")

// writeJSON writes v as JSON; HTML's characters are escaped (\u003c), so
// a writer's text is inert even where a browser sniffs.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes()) // the client went away: nothing to do
}

func (s *Server) apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) apiFail(w http.ResponseWriter, err error) {
	s.apiError(w, statusOf(err), err.Error())
}

// loginPage shows the login form, with a fresh token in a cookie and the
// form (double submit: a form posted from another site has no cookie,
// SameSite=Strict).
func (s *Server) loginPage(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// One token per browser while it signs in: a second login page (a
	// second tab, a reload) keeps the first page's form valid.
	tok := randomToken()
	if c, err := req.Cookie(loginCookie); err == nil && len(c.Value) == len(tok) {
		tok = c.Value
	}
	s.setCookie(w, req, loginCookie, tok, 30*time.Minute)
	s.render(w, nil, http.StatusOK, "login", "Sign in", map[string]string{"Token": tok, "Error": loginErrors[req.URL.Query().Get("e")]})
}

var loginErrors = map[string]string{"bad": "wrong user or password", "token": "the form expired: try again"}

func (s *Server) login(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	req.Body = http.MaxBytesReader(w, req.Body, maxForm)
	addr := s.clientAddr(req)
	now := s.now()
	if !s.limiter.allowed(addr, now) {
		s.log.add(s, entry{Time: now, User: req.PostFormValue("user"), Addr: addr, Action: "login", Result: "refused: too many failed attempts"})
		s.errorPage(w, nil, http.StatusTooManyRequests, fmt.Sprintf("too many failed sign-ins from %s: wait %s", addr, loginWindow))
		return
	}
	c, err := req.Cookie(loginCookie)
	if err != nil || c.Value == "" || req.PostFormValue("token") != c.Value {
		http.Redirect(w, req, "/login?e=token", http.StatusSeeOther)
		return
	}
	user := req.PostFormValue("user")
	if ValidUser(user) != nil || !s.users.check(user, []byte(req.PostFormValue("password"))) {
		s.limiter.failed(addr, now)
		s.log.add(s, entry{Time: now, User: printable(user, 64), Addr: addr, Action: "login", Result: "failed: wrong user or password"})
		http.Redirect(w, req, "/login?e=bad", http.StatusSeeOther)
		return
	}
	// A new session ID at every sign-in: no session fixation.
	id, _ := s.sessions.create(user, now)
	s.setCookie(w, req, sessionCookie, id, sessionMaxAge)
	s.setCookie(w, req, loginCookie, "", -1)
	s.log.add(s, entry{Time: now, User: user, Addr: addr, Action: "login", Result: "ok"})
	http.Redirect(w, req, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, req *http.Request, id *identity) {
	s.sessions.remove(id.sessID)
	s.setCookie(w, req, sessionCookie, "", -1)
	s.log.add(s, entry{Time: s.now(), User: id.user, Addr: id.addr, Action: "logout", Result: "ok"})
	http.Redirect(w, req, "/login", http.StatusSeeOther)
}
