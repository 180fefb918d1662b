package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
)

func TestMain(m *testing.M) {
	crypto.TestOnlyFastKDF()
	// Passwords hashed with tiny argon2id parameters: the tests sign in
	// often; production parameters are tested by TestSetPassword.
	hashParams = argonParams{memory: 64, time: 1, threads: 1}
	os.Exit(m.Run())
}

const (
	testUser     = "admin"
	testPassword = "correct horse battery"
	testToken    = "script-token-0123456789"
	fixtures     = "../../testdata/small"
)

// hostile is writer-chosen text that would run as script were it not
// escaped: in a file name (no '/'), a host name and a table name.
const (
	hostileName  = `<script>alert(1)<\script>&"'.sql.gz`
	hostileHost  = `<img src=x onerror=alert(2)>`
	hostileTable = `public.<script>alert.x=3</script>`
)

// hostileMarkers must never appear raw in a response.
var hostileMarkers = []string{"<script>", "<img"}

type testRepo struct {
	be     *backend.Local
	master *crypto.MasterKey
	write  *crypto.WriteKey
	audit  *crypto.AuditKey
	files  map[string]string // snapshot ID → original file
	ids    []string          // in ingest order
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	m, err := crypto.NewMasterKey(nil, uint64(pol))
	if err != nil {
		t.Fatal(err)
	}
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	ctx := context.Background()
	r, err := repo.Init(ctx, be, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, _ := m.NewWriteKey("forum", r.Config().Created)
	a, _ := m.NewAuditKey("auditor", r.Config().Created)
	for _, rec := range []*crypto.KeyRecord{w.Record(), a.Record()} {
		if err := r.AddKey(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	return &testRepo{be: be, master: m, write: w, audit: a, files: map[string]string{}}
}

func (tr *testRepo) open(t testing.TB, key repo.Key) *repo.Repo {
	t.Helper()
	r, err := repo.Open(context.Background(), tr.be, key)
	if err != nil {
		t.Fatal(err)
	}
	r.SetCacheDir(t.TempDir())
	t.Cleanup(func() { r.Close() })
	return r
}

// ingest stores a file with the write key, as the forum server does.
func (tr *testRepo) ingest(t testing.TB, path string, opts larder.IngestOptions) string {
	t.Helper()
	w := tr.open(t, tr.write)
	res, err := larder.Ingest(context.Background(), w, path, opts)
	if err != nil {
		t.Fatalf("ingest %s: %v", path, err)
	}
	if res.Snapshot == (repo.ID{}) {
		t.Fatalf("ingest %s: nothing stored (%+v)", path, res)
	}
	id := res.Snapshot.String()
	tr.files[id] = path
	tr.ids = append(tr.ids, id)
	return id
}

// forumRepo holds two nights of the classic fixture (site "discourse"
// by its name) and the hostile dump.
func forumRepo(t testing.TB) *testRepo {
	t.Helper()
	tr := newTestRepo(t)
	files, _ := filepath.Glob(filepath.Join(fixtures, "classic-gzip1", "*.tar.gz"))
	if len(files) != 2 {
		t.Fatalf("fixtures missing: %v", files)
	}
	for _, f := range files {
		tr.ingest(t, f, larder.IngestOptions{Host: "forum.example", Site: "forum"})
	}
	tr.ingest(t, hostileDump(t), larder.IngestOptions{Host: hostileHost, Site: "evil"})
	return tr
}

// hostileDump writes a pg_dump-like .sql.gz under the hostile name, with a
// table named like a script.
func hostileDump(t testing.TB) string {
	t.Helper()
	var sql bytes.Buffer
	sql.WriteString("--\n-- PostgreSQL database dump\n--\n\n")
	fmt.Fprintf(&sql, "CREATE TABLE %s (id integer);\n\nCOPY %s (id) FROM stdin;\n1\n2\n3\n\\.\n\n", hostileTable, hostileTable)
	path := filepath.Join(t.TempDir(), hostileName)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(sql.Bytes())
	zw.Close()
	if err := os.WriteFile(path, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testServer struct {
	*Server
	tr    *testRepo
	ts    *httptest.Server
	state string
}

// newServer serves tr with key (master or audit), a user with
// testPassword and testToken.
func newServer(t testing.TB, tr *testRepo, key repo.Key, mod func(*Options)) *testServer {
	t.Helper()
	state := t.TempDir()
	if err := SetPassword(state, testUser, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	opt := Options{Repo: tr.open(t, key), StateDir: state, Token: testToken, UploadDir: t.TempDir(),
		Drill: larder.DrillOptions{Host: "admin.example", TempDir: t.TempDir()}}
	if mod != nil {
		mod(&opt)
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return &testServer{Server: s, tr: tr, ts: ts, state: state}
}

// client is a browser: a cookie jar, no redirects followed.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
	addr string // X-Forwarded-For, when set
}

func (ts *testServer) client(t testing.TB) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: ts.ts.URL, hc: &http.Client{Jar: jar, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	if c.addr != "" {
		req.Header.Set("X-Forwarded-For", c.addr)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// get returns the response and its body.
func (c *client) get(path string, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp := c.do(req)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: reading: %v", path, err)
	}
	return resp, string(b)
}

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := c.do(req)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	loginTokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)
	csrfRE       = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// login signs in and returns the response to the login POST.
func (c *client) login(user, password string) *http.Response {
	c.t.Helper()
	_, body := c.get("/login")
	m := loginTokenRE.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no token in the login form:\n%s", body)
	}
	resp, _ := c.post("/login", url.Values{"token": {m[1]}, "user": {user}, "password": {password}})
	return resp
}

// signIn logs in as the test user and fails unless it worked.
func (c *client) signIn() *client {
	c.t.Helper()
	resp := c.login(testUser, testPassword)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		c.t.Fatalf("sign-in: %s, to %q", resp.Status, resp.Header.Get("Location"))
	}
	return c
}

// csrf is the session's token, from a page's form.
func (c *client) csrf() string {
	c.t.Helper()
	_, body := c.get("/")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no csrf token on the sites page:\n%s", body)
	}
	return m[1]
}

// waitJob polls a job's API until it ends (or the deadline: a failure).
func (c *client) waitJob(id string) jobView {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var v jobView
		c.getJSON("/api/jobs/"+id, &v)
		if v.Finished {
			return v
		}
		time.Sleep(50 * time.Millisecond) // polling, as the page's script does
	}
	c.t.Fatalf("job %s did not end in 3 minutes", id)
	return jobView{}
}

func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	resp, body := c.get(path)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		c.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}
