// Package web is larder serve's admin page: server-rendered pages
// (html/template, no JavaScript framework) and a small JSON API over one
// opened repository, for the forum's admins. It lists sites and their
// health, snapshots and their details, drills and the audit result, shows
// an activity log, streams verified downloads, and, with the master key,
// runs drills, forgets snapshots and ingests uploaded backups.
//
// # Trust
//
// Everything a writer chose (snapshot names, host names, table names, tar
// member names) is attacker-controlled. It reaches pages only through
// html/template's contextual escaping (no template.HTML of writer data,
// and the SVG chart is made by the same templates), and the API only as
// JSON strings with HTML characters escaped. docs/WEB.md says what each
// key can see and do; SECURITY.md lists the web server's defences and the
// tests that show them.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Server.
type Options struct {
	// Repo is the opened repository: with the master key the server
	// reads and acts; with an audit key it is a read-only view (no
	// download, no action).
	Repo *repo.Repo
	// StateDir holds the users file (argon2id hashes, SetPassword) and
	// the server's own append-only activity log.
	StateDir string
	// Token, when not empty, is the bearer token scripts send to the API
	// (Authorization: Bearer TOKEN).
	Token string
	// Secure: the server is reached over TLS (its own or a proxy's), so
	// cookies are marked Secure.
	Secure bool
	// BehindProxy trusts the last X-Forwarded-For address of requests
	// from a loopback address (a reverse proxy on this machine) as the
	// client's: for the log and the login rate limit.
	BehindProxy bool
	// Drill is the base of the drills the page starts (PGBin, PGUser,
	// TempDir, Host); Postgres says whether PostgreSQL drills can be
	// offered. Exec and Keep are never taken from the web.
	Drill    larder.DrillOptions
	Postgres bool
	// UploadDir is where uploaded backups are streamed before they are
	// ingested (default: the system's temporary folder); MaxUpload bounds
	// an upload's size (0: no bound).
	UploadDir string
	MaxUpload int64
	// Logf, when set, hears of problems the pages cannot show (a failed
	// write to the activity log).
	Logf func(format string, a ...any)
}

// Server serves the pages and the API. Create it with New; it is an
// http.Handler. Close stops running actions.
type Server struct {
	opt      Options
	r        *repo.Repo
	mux      *http.ServeMux
	pages    map[string]*template.Template
	users    *userStore
	sessions *sessionStore
	limiter  *loginLimiter
	jobs     *jobRunner
	log      *activityLog
	now      func() time.Time

	// restore is larder.Restore (a test makes verification fail).
	restore func(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, w io.Writer) (uint64, error)

	auditMu   sync.Mutex
	lastAudit *auditResult

	ctx    context.Context
	cancel context.CancelFunc
}

// New makes a server for opt.Repo, which must be opened with the master
// or an audit key. Sign-in needs a user made by SetPassword in
// opt.StateDir, or opt.Token for the API.
func New(opt Options) (*Server, error) {
	if opt.Repo == nil {
		return nil, errors.New("web: no repository")
	}
	if role := opt.Repo.Role(); role != crypto.RoleMaster && role != crypto.RoleAudit {
		return nil, fmt.Errorf("web: %w: the admin page reads manifests: it needs the master or an audit key", repo.ErrPermission)
	}
	if opt.StateDir == "" {
		return nil, errors.New("web: no state folder")
	}
	if err := os.MkdirAll(opt.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("web: state folder: %w", err)
	}
	users, err := loadUsers(opt.StateDir)
	if err != nil {
		return nil, err
	}
	if len(users.hashes) == 0 && opt.Token == "" {
		return nil, ErrNoLogin
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opt: opt, r: opt.Repo, pages: pages, users: users, sessions: newSessionStore(),
		limiter: newLoginLimiter(), jobs: newJobRunner(), now: time.Now, restore: larder.Restore,
		log: &activityLog{path: filepath.Join(opt.StateDir, activityFile)}, ctx: ctx, cancel: cancel}
	s.routes()
	return s, nil
}

// ErrNoLogin: no user has a password and there is no token, so nobody
// could sign in.
var ErrNoLogin = errors.New("no one can sign in: set a password with larder serve --set-password (or give --token-file)")

// Close cancels running actions and waits for them to end.
func (s *Server) Close() error {
	s.cancel()
	s.jobs.wait()
	return nil
}

// master reports whether the server holds the master key (downloads and
// actions).
func (s *Server) master() bool { return s.r.Role() == crypto.RoleMaster }

func (s *Server) logf(format string, a ...any) {
	if s.opt.Logf != nil {
		s.opt.Logf(format, a...)
	}
}

// ServeHTTP adds the security headers to every response and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if s.opt.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, req)
}

// contentSecurityPolicy allows only the server's own script and style
// files: no inline script, no inline style, no other origin, no frames,
// forms that post only here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// static serves the embedded script and style sheet.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded folder exists: a build error
	}
	files := http.FileServer(http.FS(sub))
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		files.ServeHTTP(w, req)
	}))
}
