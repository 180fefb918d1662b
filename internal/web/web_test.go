package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/larder/larder"
	"github.com/larder/larder/repo"
)

// pagesOf lists every GET page and API path of a repository's content.
func pagesOf(tr *testRepo) []string {
	paths := []string{"/", "/sites/forum", "/sites/evil", "/audit", "/activity", "/ingest",
		"/api/sites", "/api/status", "/api/snapshots", "/api/snapshots?site=evil", "/api/drills"}
	for _, id := range tr.ids {
		paths = append(paths, "/snapshots/"+id, "/snapshots/"+id[:8]+"/forget", "/api/snapshots/"+id)
	}
	return paths
}

// TestAuthRequired: without a session every page sends the browser to
// the login page and every API path answers 401; the bearer token opens
// the API only, and a wrong one nothing.
func TestAuthRequired(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	anon := ts.client(t)
	for _, p := range append(pagesOf(tr), "/snapshots/"+tr.ids[0]+"/download", "/api/snapshots/"+tr.ids[0]+"/download") {
		resp, body := anon.get(p)
		api := strings.HasPrefix(p, "/api/")
		switch {
		case api && resp.StatusCode != http.StatusUnauthorized:
			t.Errorf("GET %s without credentials: %s", p, resp.Status)
		case !api && (resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login"):
			t.Errorf("GET %s without a session: %s to %q", p, resp.Status, resp.Header.Get("Location"))
		}
		if strings.Contains(body, "forum.example") || strings.Contains(body, tr.ids[0]) {
			t.Errorf("GET %s without credentials shows content: %s", p, body)
		}
		resp, _ = anon.get(p, "Authorization", "Bearer "+testToken)
		if api && resp.StatusCode != http.StatusOK || !api && resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s with the token: %s", p, resp.Status)
		}
		if resp, _ := anon.get(p, "Authorization", "Bearer wrong-"+testToken); resp.StatusCode == http.StatusOK {
			t.Errorf("GET %s with a wrong token: %s", p, resp.Status)
		}
	}
	for _, p := range []string{"/snapshots/" + tr.ids[0] + "/drill", "/snapshots/" + tr.ids[0] + "/forget", "/audit", "/ingest", "/logout"} {
		if resp, _ := anon.post(p, url.Values{}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Errorf("POST %s without a session: %s", p, resp.Status)
		}
	}
}

// TestLogin: a wrong password is refused; the right one gives a new
// session cookie, HttpOnly and SameSite=Strict (Secure under TLS); a login
// form posted without its token (from another site) is refused; the users
// file holds an argon2id hash, never the password.
func TestLogin(t *testing.T) {
	tr := forumRepo(t)
	for _, secure := range []bool{false, true} {
		ts := newServer(t, tr, tr.master, func(o *Options) { o.Secure = secure })
		c := ts.client(t)
		if !secure {
			// A TLS proxy on this machine says so; the header from anyone
			// else (not BehindProxy) counts for nothing.
			proxied := newServer(t, tr, tr.master, func(o *Options) { o.BehindProxy = true }).client(t)
			proxied.hc.Transport = headerTransport{"X-Forwarded-Proto", "https"}
			if ck := proxied.login(testUser, testPassword).Cookies(); len(ck) == 0 || !ck[0].Secure {
				t.Fatalf("behind a TLS proxy: cookies %v", ck)
			}
			c.hc.Transport = headerTransport{"X-Forwarded-Proto", "https"}
		}
		if resp := c.login(testUser, "wrong password!"); resp.Header.Get("Location") != "/login?e=bad" {
			t.Fatalf("a wrong password: %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		if resp := c.login("nobody", testPassword); resp.Header.Get("Location") != "/login?e=bad" {
			t.Fatalf("an unknown user: %s to %q", resp.Status, resp.Header.Get("Location"))
		}
		resp := c.login(testUser, testPassword)
		var sess *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				sess = ck
			}
		}
		if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure != secure || sess.Path != "/" {
			t.Fatalf("session cookie (secure %v): %+v", secure, sess)
		}
		if resp, body := c.get("/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "forum") {
			t.Fatalf("signed in, the sites page: %s", resp.Status)
		}
		// A second sign-in gets another session.
		if again := c.login(testUser, testPassword); len(again.Cookies()) == 0 || again.Cookies()[0].Value == sess.Value {
			t.Fatal("a new sign-in kept the session ID")
		}
	}
	ts := newServer(t, tr, tr.master, nil)
	forged := ts.client(t)
	resp, _ := forged.post("/login", url.Values{"token": {"guessed"}, "user": {testUser}, "password": {testPassword}})
	if resp.Header.Get("Location") != "/login?e=token" || len(resp.Cookies()) != 0 {
		t.Fatalf("a login form without its cookie: %s to %q, cookies %v", resp.Status, resp.Header.Get("Location"), resp.Cookies())
	}
	b, err := os.ReadFile(filepath.Join(ts.state, usersFile))
	if err != nil || bytes.Contains(b, []byte(testPassword)) || !bytes.HasPrefix(b, []byte(testUser+" $argon2id$v=19$")) {
		t.Fatalf("users file: %q (%v)", b, err)
	}
	// Sign out ends the session on the server, not only in the browser.
	c := ts.client(t).signIn()
	cookie := c.hc.Jar.Cookies(mustURL(c.base))
	if resp, _ := c.post("/logout", url.Values{"csrf": {c.csrf()}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	replay := ts.client(t)
	replay.hc.Jar.SetCookies(mustURL(c.base), cookie)
	if resp, _ := replay.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the session cookie still works after sign-out: %s", resp.Status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestLoginRateLimit: after five failures from one address even the right
// password is refused (429) for a while; another address is not held up;
// X-Forwarded-For counts only behind a proxy (on loopback), so a client
// cannot dodge the limit by sending one.
func TestLoginRateLimit(t *testing.T) {
	tr := newTestRepo(t)
	for _, proxy := range []bool{false, true} {
		ts := newServer(t, tr, tr.master, func(o *Options) { o.BehindProxy = proxy })
		c := ts.client(t)
		c.addr = "203.0.113.7"
		for i := 0; i < loginFailures; i++ {
			if resp := c.login(testUser, "wrong password!"); resp.Header.Get("Location") != "/login?e=bad" {
				t.Fatalf("failure %d: %s", i+1, resp.Status)
			}
		}
		if resp := c.login(testUser, testPassword); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("proxy %v: the right password after %d failures: %s", proxy, loginFailures, resp.Status)
		}
		other := ts.client(t)
		other.addr = "198.51.100.9"
		resp := other.login(testUser, testPassword)
		if proxy && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("behind a proxy, another client address is held up: %s", resp.Status)
		}
		if !proxy && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("not behind a proxy, a forged X-Forwarded-For dodged the limit: %s", resp.Status)
		}
	}
}

// TestCSRF: every state-changing form without the session's token, or
// with another session's, is refused and changes nothing.
func TestCSRF(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	otherToken := ts.client(t).signIn().csrf()
	id := tr.ids[0]
	for _, tok := range []string{"", otherToken, "x" + c.csrf()} {
		for _, p := range []string{"/snapshots/" + id + "/forget", "/snapshots/" + id + "/drill", "/audit", "/logout"} {
			form := url.Values{"confirm": {"yes"}}
			if tok != "" {
				form.Set("csrf", tok)
			}
			if resp, _ := c.post(p, form); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with token %q: %s", p, tok, resp.Status)
			}
		}
		resp := c.upload(tok, "forum", "x.sql.gz", []byte("data"), false)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("upload with token %q: %s", tok, resp.Status)
		}
	}
	// The token after the file does not count: the file would have been
	// read first.
	if resp := c.upload(c.csrf(), "forum", "x.sql.gz", []byte("data"), true); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("upload with the token after the file: %s", resp.Status)
	}
	if resp, _ := c.get("/snapshots/" + id); resp.StatusCode != http.StatusOK {
		t.Fatalf("the snapshot went: %s", resp.Status)
	}
	if jobs := ts.jobs.recentViews(); len(jobs) != 0 {
		t.Fatalf("refused forms started actions: %+v", jobs)
	}
	if _, err := os.Stat(filepath.Join(ts.state, auditFile)); err == nil {
		t.Fatal("a refused form ran an audit")
	}
}

// upload posts a file to /ingest: the CSRF token (if any) before the file,
// or after it with tokenLast.
func (c *client) upload(tok, site, name string, data []byte, tokenLast bool) *http.Response {
	c.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if tok != "" && !tokenLast {
		mw.WriteField("csrf", tok)
	}
	mw.WriteField("site", site)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	if tok != "" && tokenLast {
		mw.WriteField("csrf", tok)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+"/ingest", &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp := c.do(req)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestAuditKeyServer: a server holding an audit key shows sites,
// snapshots, drills and the audit, but has no download link and refuses
// downloads and every action, with a valid session and token.
func TestAuditKeyServer(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.audit, nil)
	c := ts.client(t).signIn()
	id := tr.ids[0]
	resp, body := c.get("/snapshots/" + id)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "audit key") {
		t.Fatalf("snapshot page: %s\n%s", resp.Status, body)
	}
	for _, bad := range []string{"/download", "/drill", "/forget", `href="/ingest"`} {
		if strings.Contains(body, bad) {
			t.Errorf("the audit-key page offers %s", bad)
		}
	}
	tok := c.csrf()
	for _, p := range []string{"/snapshots/" + id + "/download", "/api/snapshots/" + id + "/download", "/snapshots/" + id + "/forget", "/ingest"} {
		if resp, _ := c.get(p); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s on an audit-key server: %s", p, resp.Status)
		}
	}
	if resp, _ := c.get("/api/snapshots/"+id+"/download", "Authorization", "Bearer "+testToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("token download on an audit-key server: %s", resp.Status)
	}
	for _, p := range []string{"/snapshots/" + id + "/forget", "/snapshots/" + id + "/drill"} {
		if resp, _ := c.post(p, url.Values{"csrf": {tok}, "confirm": {"yes"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s on an audit-key server: %s", p, resp.Status)
		}
	}
	if resp := c.upload(tok, "forum", "x.sql.gz", []byte("data"), false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("upload on an audit-key server: %s", resp.Status)
	}
	var snaps []snapshotInfo
	c.getJSON("/api/snapshots", &snaps)
	if len(snaps) != len(tr.ids) {
		t.Fatalf("the audit key lists %d snapshots, want %d", len(snaps), len(tr.ids))
	}
	// Its own work, the audit, it runs.
	resp, _ = c.post("/audit", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("audit: %s", resp.Status)
	}
	if v := c.waitJob(strings.TrimPrefix(resp.Header.Get("Location"), "/jobs/")); v.State != "ok" {
		t.Fatalf("audit job: %+v", v)
	}
	if _, body := c.get("/audit"); !strings.Contains(body, `id="audit-result">ok`) {
		t.Fatalf("audit page:\n%s", body)
	}
}

// TestEscaping: a backup named like a script, from a host named like an
// image tag, holding a table named like a script, shows escaped on every
// page and in every API answer, also after a drill and an audit.
func TestEscaping(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	evil := tr.ids[len(tr.ids)-1]
	tok := c.csrf()
	resp, _ := c.post("/snapshots/"+evil+"/drill", url.Values{"csrf": {tok}})
	drill := c.waitJob(strings.TrimPrefix(resp.Header.Get("Location"), "/jobs/"))
	resp, _ = c.post("/audit", url.Values{"csrf": {tok}})
	c.waitJob(strings.TrimPrefix(resp.Header.Get("Location"), "/jobs/"))
	// A failed login under a hostile user name goes in the log too.
	ts.client(t).login(`<script>alert(4)</script>`, "x")
	paths := append(pagesOf(tr), "/jobs/"+drill.ID, "/api/jobs/"+drill.ID)
	for _, p := range paths {
		resp, body := c.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
		for _, m := range hostileMarkers {
			if strings.Contains(body, m) {
				t.Errorf("GET %s: %q appears unescaped", p, m)
			}
		}
	}
	_, page := c.get("/snapshots/" + evil)
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;\\script&gt;&amp;&#34;&#39;.sql.gz", "&lt;img src=x onerror=alert(2)&gt;", "public.&lt;script&gt;alert.x=3&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the snapshot page does not show %s", want)
		}
	}
	var info snapshotDetail
	c.getJSON("/api/snapshots/"+evil, &info)
	if info.Name != hostileName || info.Host != hostileHost || info.Summary == nil || len(info.Summary.Tables) != 1 || info.Summary.Tables[0].Table != hostileTable {
		t.Fatalf("the API does not give back the names as written: %+v", info)
	}
	dl, _ := c.get("/snapshots/" + evil + "/download")
	_, params, err := mime.ParseMediaType(dl.Header.Get("Content-Disposition"))
	if name := params["filename"]; err != nil || name == "" || strings.ContainsAny(name, "/\\\x00\r\n\"") {
		t.Errorf("Content-Disposition %q: filename %q (%v)", dl.Header.Get("Content-Disposition"), name, err)
	}
}

// TestSecurityHeaders: every page has the strict Content-Security-Policy
// (scripts and styles from this server only, nothing inline) and no page
// carries an inline script, a style attribute or an event handler.
func TestSecurityHeaders(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	for _, p := range append(pagesOf(tr), "/login", "/static/progress.js") {
		resp, body := c.get(p)
		csp := resp.Header.Get("Content-Security-Policy")
		if csp != contentSecurityPolicy || strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", p, resp.Header)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			continue
		}
		low := strings.ToLower(body)
		if strings.Contains(low, "<script>") || strings.Contains(low, " style=") || strings.Contains(low, " onload=") || strings.Contains(low, " onclick=") {
			t.Errorf("GET %s: inline script, style or handler", p)
		}
	}
}

// TestDownload: the download is the original, bit for bit, with its
// length, its SHA-256 on the page beside the link and in Repr-Digest; the
// API's download is the same.
func TestDownload(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	id := tr.ids[1]
	orig, _ := os.ReadFile(tr.files[id])
	sum := sha256.Sum256(orig)
	_, page := c.get("/snapshots/" + id)
	if !strings.Contains(page, `href="/snapshots/`+id+`/download"`) || !strings.Contains(page, hex.EncodeToString(sum[:])) {
		t.Fatalf("the snapshot page has no download link with the SHA-256")
	}
	for _, p := range []string{"/snapshots/" + id + "/download", "/api/snapshots/" + id[:8] + "/download"} {
		resp, body := c.get(p)
		if resp.StatusCode != http.StatusOK || body != string(orig) || resp.ContentLength != int64(len(orig)) {
			t.Fatalf("GET %s: %s, %d bytes (want %d), equal %v", p, resp.Status, len(body), len(orig), body == string(orig))
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=`+filepath.Base(tr.files[id]) {
			t.Errorf("Content-Disposition %q", cd)
		}
		if resp.Header.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("headers %v", resp.Header)
		}
	}
	if resp, _ := c.get("/api/snapshots/"+id+"/download", "Authorization", "Bearer "+testToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("download with the token: %s", resp.Status)
	}
	if resp, _ := c.get("/snapshots/ffffffff/download"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("download of no snapshot: %s", resp.Status)
	}
}

// TestDownloadRange: resumed downloads get exactly the bytes they ask for
// (206 with Content-Range); a range past the end is 416; several ranges
// or a stale If-Range get the whole file.
func TestDownloadRange(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	id := tr.ids[0]
	orig, _ := os.ReadFile(tr.files[id])
	n := len(orig)
	sum := sha256.Sum256(orig)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	cases := []struct {
		rng, ifRange string
		status       int
		from, to     int // the bytes expected: orig[from:to]
	}{
		{"bytes=0-99", "", 206, 0, 100},
		{"bytes=100-", "", 206, 100, n},
		{"bytes=-50", "", 206, n - 50, n},
		{"bytes=5-5", "", 206, 5, 6},
		{"bytes=10-999999999", "", 206, 10, n},
		{"bytes=" + itoa(n-1) + "-", "", 206, n - 1, n},
		{"bytes=0-9,20-29", "", 200, 0, n},
		{"bytes=100-", `"stale"`, 200, 0, n},
		{"bytes=100-", etag, 206, 100, n},
		{"bytes=" + itoa(n) + "-", "", 416, 0, 0},
	}
	for _, tc := range cases {
		hdr := []string{"Range", tc.rng}
		if tc.ifRange != "" {
			hdr = append(hdr, "If-Range", tc.ifRange)
		}
		resp, body := c.get("/snapshots/"+id+"/download", hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("Range %s (If-Range %s): %s", tc.rng, tc.ifRange, resp.Status)
			continue
		}
		if tc.status == 416 {
			if resp.Header.Get("Content-Range") != "bytes */"+itoa(n) {
				t.Errorf("416 Content-Range %q", resp.Header.Get("Content-Range"))
			}
			continue
		}
		if body != string(orig[tc.from:tc.to]) || resp.ContentLength != int64(tc.to-tc.from) {
			t.Errorf("Range %s: %d bytes, want orig[%d:%d]", tc.rng, len(body), tc.from, tc.to)
		}
		if tc.status == 206 && resp.Header.Get("Content-Range") != "bytes "+itoa(tc.from)+"-"+itoa(tc.to-1)+"/"+itoa(n) {
			t.Errorf("Range %s: Content-Range %q", tc.rng, resp.Header.Get("Content-Range"))
		}
	}
}

func itoa(n int) string { return strconvItoa(n) }

// TestDownloadAbortsOnVerifyFailure: when the restored bytes do not have
// the recorded SHA-256 (here a restore whose manifest records another
// hash, so every byte arrives and only the check fails), the client gets
// the headers and then a cut connection: fewer bytes than Content-Length,
// a read error, never a complete file; for a range too.
func TestDownloadAbortsOnVerifyFailure(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	ts.restore = func(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, w io.Writer) (uint64, error) {
		bad := *snap.Manifest
		bad.SHA256 = strings.Repeat("0", 64)
		s := *snap
		s.Manifest = &bad
		return larder.Restore(ctx, r, &s, w)
	}
	c := ts.client(t).signIn()
	id := tr.ids[0]
	orig, _ := os.ReadFile(tr.files[id])
	for _, rng := range []string{"", "bytes=100-", "bytes=0-99"} {
		req, _ := http.NewRequest("GET", c.base+"/snapshots/"+id+"/download", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp := c.do(req)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rng == "bytes=0-99" {
			// The range fits the response's buffer: nothing went before
			// the check failed, so the answer is an error status.
			if resp.StatusCode != http.StatusInternalServerError || bytes.Contains(body, orig[:99]) {
				t.Fatalf("Range %q: %s, %d bytes", rng, resp.Status, len(body))
			}
			continue
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("Range %q: %s (the headers should have gone)", rng, resp.Status)
		}
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || int64(len(body)) >= resp.ContentLength {
			t.Fatalf("Range %q: read %d of %d bytes, error %v: the client got a complete body", rng, len(body), resp.ContentLength, err)
		}
		if !bytes.Contains(orig, body) {
			t.Fatalf("Range %q: the bytes sent are not the original's", rng)
		}
	}
	events, _ := ts.log.read()
	failed := 0
	for _, e := range events {
		if strings.HasPrefix(e.Action, "download") && strings.Contains(e.Result, "do not match") {
			failed++
		}
	}
	if failed != 3 {
		t.Fatalf("the log records %d failed downloads, want 3: %+v", failed, events)
	}
}

// TestDownloadDamagedPack: a pack damaged in storage makes the restore
// fail; the client never gets a complete body (an error status before
// the headers, or a cut connection after).
func TestDownloadDamagedPack(t *testing.T) {
	tr := forumRepo(t)
	id := tr.ids[0]
	orig, _ := os.ReadFile(tr.files[id])
	damaged := 0
	filepath.WalkDir(filepath.Join(tr.be.Location(), "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			for i := 0; i < len(b); i += 997 {
				b[i] ^= 0x55
			}
			os.Chmod(p, 0o600)
			if os.WriteFile(p, b, 0o600) == nil {
				damaged++
			}
		}
		return nil
	})
	if damaged == 0 {
		t.Fatal("no pack to damage")
	}
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	req, _ := http.NewRequest("GET", c.base+"/snapshots/"+id+"/download", nil)
	resp := c.do(req)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && err == nil && len(body) == len(orig) {
		t.Fatalf("a damaged repository gave a complete download")
	}
	t.Logf("damaged pack: %s, %d of %d bytes, %v", resp.Status, len(body), resp.ContentLength, err)
}

func strconvItoa(n int) string { return strconv.Itoa(n) }

type headerTransport struct{ k, v string }

func (h headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set(h.k, h.v)
	return http.DefaultTransport.RoundTrip(req)
}
