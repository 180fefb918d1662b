package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// usersFile is the file in the state folder that holds each user's
// password hash: "NAME $argon2id$v=19$m=MEMORY,t=TIME,p=THREADS$SALT$HASH"
// a line (PHC string format, unpadded standard base64).
const usersFile = "users"

// argon2id parameters of new hashes: 64 MiB, 3 passes, as larder's key
// files (RFC 9106's second recommendation).
var hashParams = argonParams{memory: 64 << 10, time: 3, threads: 2}

type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// Bounds on the parameters a users file may name, so that a damaged or
// planted file cannot make a login allocate without end.
const (
	maxHashMemory = 1 << 20 // KiB: 1 GiB
	maxHashTime   = 16
	maxUsersFile  = 1 << 20
)

var userRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidUser reports whether name can name a user: 1 to 64 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidUser(name string) error {
	if !userRE.MatchString(name) {
		return fmt.Errorf("user %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// MinPassword is the shortest password SetPassword takes.
const MinPassword = 12

// SetPassword stores user's password in stateDir as an argon2id hash
// (never the password), replacing the user's old one; the file is written
// beside and renamed into place, mode 0600.
func SetPassword(stateDir, user string, password []byte) error {
	if err := ValidUser(user); err != nil {
		return err
	}
	if n := len([]rune(string(password))); n < MinPassword {
		return fmt.Errorf("the password has %d characters: give at least %d", n, MinPassword)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	us, err := loadUsers(stateDir)
	if err != nil {
		return err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	us.hashes[user] = encodeHash(hashParams, salt, argon2.IDKey(password, salt, hashParams.time, hashParams.memory, hashParams.threads, 32))
	var b bytes.Buffer
	names := make([]string, 0, len(us.hashes))
	for n := range us.hashes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, us.hashes[n])
	}
	return writeFileAtomic(filepath.Join(stateDir, usersFile), b.Bytes())
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()      // the write's error is the one to report
		_ = os.Remove(tmp) // and the partial file goes
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func encodeHash(p argonParams, salt, key []byte) string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

// errBadHash: a users file line that is no argon2id hash within bounds.
var errBadHash = errors.New("not an argon2id hash this server accepts")

func decodeHash(s string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, nil, nil, errBadHash
	}
	if p.memory < 8 || p.memory > maxHashMemory || p.time < 1 || p.time > maxHashTime || threads < 1 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.threads = uint8(threads)
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// userStore is the users file, read when the server starts.
type userStore struct {
	hashes map[string]string
	// hashing admits one password check at a time: each takes the
	// hash's memory (64 MiB), so logins cannot add up to more.
	hashing chan struct{}
}

func loadUsers(dir string) (*userStore, error) {
	us := &userStore{hashes: map[string]string{}, hashing: make(chan struct{}, 1)}
	path := filepath.Join(dir, usersFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return us, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 4096)
	read := 0
	for sc.Scan() {
		read += len(sc.Bytes()) + 1
		if read > maxUsersFile {
			return nil, fmt.Errorf("%s: longer than %d bytes", path, maxUsersFile)
		}
		name, hash, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || ValidUser(name) != nil {
			return nil, fmt.Errorf("%s: a line is not NAME HASH", path)
		}
		if _, _, _, err := decodeHash(hash); err != nil {
			return nil, fmt.Errorf("%s: user %s: %w", path, name, err)
		}
		us.hashes[name] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return us, nil
}

// check reports whether password is user's. An unknown user costs a hash
// too, so that timing does not tell which users exist.
func (us *userStore) check(user string, password []byte) bool {
	us.hashing <- struct{}{}
	defer func() { <-us.hashing }()
	stored, ok := us.hashes[user]
	if !ok {
		stored = encodeHash(hashParams, make([]byte, 16), make([]byte, 32))
	}
	p, salt, key, err := decodeHash(stored)
	if err != nil {
		return false
	}
	got := argon2.IDKey(password, salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1 && ok
}

// Sessions live in memory: a restart signs everyone out.
const (
	sessionCookie  = "larder_session"
	loginCookie    = "larder_login" // the login form's CSRF token (before a session)
	sessionMaxAge  = 12 * time.Hour
	maxSessions    = 1000
	sessionIDBytes = 32
)

type session struct {
	user    string
	csrf    string
	expires time.Time
}

type sessionStore struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessionStore() *sessionStore { return &sessionStore{m: map[string]*session{}} }

func randomToken() string {
	b := make([]byte, sessionIDBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user, dropping expired ones (and, at the
// bound, the oldest).
func (ss *sessionStore) create(user string, now time.Time) (string, *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var oldestID string
	var oldest time.Time
	for id, s := range ss.m {
		if now.After(s.expires) {
			delete(ss.m, id)
		} else if oldestID == "" || s.expires.Before(oldest) {
			oldestID, oldest = id, s.expires
		}
	}
	if len(ss.m) >= maxSessions {
		delete(ss.m, oldestID)
	}
	id := randomToken()
	s := &session{user: user, csrf: randomToken(), expires: now.Add(sessionMaxAge)}
	ss.m[id] = s
	return id, s
}

func (ss *sessionStore) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil || now.After(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessionStore) remove(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// Login rate limit: at most loginFailures failed attempts per client
// address in loginWindow; further attempts, right or wrong, get 429.
const (
	loginFailures = 5
	loginWindow   = 15 * time.Minute
	maxTracked    = 10000
)

type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
}

func newLoginLimiter() *loginLimiter { return &loginLimiter{failures: map[string][]time.Time{}} }

// allowed reports whether addr may try to log in now.
func (l *loginLimiter) allowed(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(addr, now)) < loginFailures
}

func (l *loginLimiter) recent(addr string, now time.Time) []time.Time {
	var keep []time.Time
	for _, t := range l.failures[addr] {
		if now.Sub(t) < loginWindow {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		delete(l.failures, addr)
	} else {
		l.failures[addr] = keep
	}
	return keep
}

func (l *loginLimiter) failed(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) >= maxTracked {
		for a := range l.failures {
			l.recent(a, now)
		}
		if len(l.failures) >= maxTracked {
			// A flood from many addresses: forget them all rather
			// than grow; each is then held by its next five failures.
			clear(l.failures)
		}
	}
	l.failures[addr] = append(l.recent(addr, now), now)
}

// clientAddr is the request's client address: the connection's, or with
// BehindProxy and a loopback connection, the last X-Forwarded-For hop.
func (s *Server) clientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	if s.opt.BehindProxy {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			if xff := req.Header.Values("X-Forwarded-For"); len(xff) > 0 {
				hops := strings.Split(xff[len(xff)-1], ",")
				if last := strings.TrimSpace(hops[len(hops)-1]); net.ParseIP(last) != nil {
					return last
				}
			}
		}
	}
	return host
}

// identity is who made a request: a signed-in user (with the session's
// CSRF token) or a script with the bearer token.
type identity struct {
	user   string
	sess   *session
	token  bool
	addr   string
	sessID string
}

// authenticate finds the request's identity, or nil. The bearer token
// counts for the API only; browsers send cookies.
func (s *Server) authenticate(req *http.Request) *identity {
	addr := s.clientAddr(req)
	if auth := req.Header.Get("Authorization"); auth != "" {
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || s.opt.Token == "" || !strings.HasPrefix(req.URL.Path, "/api/") {
			return nil
		}
		want := sha256.Sum256([]byte(s.opt.Token))
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			return nil
		}
		return &identity{user: "token", token: true, addr: addr}
	}
	c, err := req.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	sess := s.sessions.get(c.Value, s.now())
	if sess == nil {
		return nil
	}
	return &identity{user: sess.user, sess: sess, addr: addr, sessID: c.Value}
}

// validCSRF reports whether a state-changing request carries its
// session's token. Bearer requests carry no cookie a browser could send
// for another site, and need none.
func (id *identity) validCSRF(token string) bool {
	if id.token {
		return true
	}
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(id.sess.csrf)) == 1
}

// secure reports whether the request came over TLS: the server's own, or
// with BehindProxy a proxy's on this machine that says so
// (X-Forwarded-Proto: https).
func (s *Server) secure(req *http.Request) bool {
	if s.opt.Secure || req.TLS != nil {
		return true
	}
	if !s.opt.BehindProxy || req.Header.Get("X-Forwarded-Proto") != "https" {
		return false
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

func (s *Server) setCookie(w http.ResponseWriter, req *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: s.secure(req), MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}
