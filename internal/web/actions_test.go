package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/internal/testenv"
	"github.com/larder/larder/repo"
)

func jobOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/jobs/") {
		t.Fatalf("starting an action: %s to %q", resp.Status, loc)
	}
	return strings.TrimPrefix(loc, "/jobs/")
}

// TestDrillJob: a drill started from the page runs with progress (its
// restore's bytes, to the file's size) and a log, ends ok, is recorded
// in the repository (drills API, snapshot page) and in the activity log;
// a second action while one runs is refused.
func TestDrillJob(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	id := tr.ids[0]
	orig, _ := os.ReadFile(tr.files[id])
	v := c.waitJob(jobOf(t, mustPost(c, "/snapshots/"+id[:8]+"/drill", url.Values{"csrf": {c.csrf()}})))
	if v.State != "ok" || !strings.Contains(v.Result, "sha256 verified") || v.Phase != "restore" ||
		v.Done != int64(len(orig)) || v.Total != int64(len(orig)) || v.Percent != 100 {
		t.Fatalf("drill job: %+v", v)
	}
	if !strings.Contains(strings.Join(v.Log, "\n"), "restore") || v.Link != "/snapshots/"+id {
		t.Fatalf("drill log: %q, link %q", v.Log, v.Link)
	}
	var drills []drillInfo
	c.getJSON("/api/drills", &drills)
	if len(drills) != 1 || drills[0].Snapshot.String() != id || !drills[0].OK || drills[0].Site != "forum" || drills[0].Host != "admin.example" {
		t.Fatalf("drills: %+v", drills)
	}
	if _, page := c.get("/snapshots/" + id); !strings.Contains(page, "sha256 verified") {
		t.Fatal("the snapshot page does not show the drill")
	}
	if _, page := c.get("/jobs/" + v.ID); !strings.Contains(page, "drill ok") {
		t.Fatal("the job page does not show the result")
	}
	// One action at a time.
	busy, err := ts.jobs.begin("drill", "x", &identity{user: "other"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := c.post("/snapshots/"+id+"/drill", url.Values{"csrf": {c.csrf()}}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("a drill beside another action: %s", resp.Status)
	}
	ts.jobs.end(busy, "", nil)
	if _, page := c.get("/activity"); !strings.Contains(page, "drill") || !strings.Contains(page, "ok: drill ok") {
		t.Fatalf("the activity page does not show the drill:\n%s", page)
	}
}

func mustPost(c *client, path string, form url.Values) *http.Response {
	resp, _ := c.post(path, form)
	return resp
}

// TestDrillPostgresJob: with PostgreSQL offered, the page's drill loads
// the dump into a scratch cluster and compares row counts.
func TestDrillPostgresJob(t *testing.T) {
	testenv.NeedPostgres(t)
	tr := forumRepo(t)
	// As root the scratch server runs as another user, who must enter
	// the folder.
	tmp, err := os.MkdirTemp("", "larder-web-drill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o755)
	ts := newServer(t, tr, tr.master, func(o *Options) {
		o.Postgres = true
		o.Drill.TempDir = tmp
	})
	c := ts.client(t).signIn()
	if _, page := c.get("/snapshots/" + tr.ids[0]); !strings.Contains(page, `name="postgres"`) {
		t.Fatal("no PostgreSQL choice on the snapshot page")
	}
	v := c.waitJob(jobOf(t, mustPost(c, "/snapshots/"+tr.ids[0]+"/drill", url.Values{"csrf": {c.csrf()}, "postgres": {"1"}})))
	if v.State != "ok" || !strings.Contains(v.Result, "rows match") {
		t.Fatalf("PostgreSQL drill: %+v", v)
	}
}

// TestIngestUpload: an uploaded backup is streamed to disk as it arrives
// (the file grows there while the client is still sending), ingested with
// the master key under the site given, and its temporary copy removed;
// a bad site name is refused before anything is stored.
func TestIngestUpload(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	if resp := c.upload(c.csrf(), "../etc", "x.sql.gz", []byte("data"), false); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad site: %s", resp.Status)
	}
	src := filepath.Join(fixtures, "dumponly", "discourse-2026-01-06-032511-v20251130140459.sql.gz")
	orig, _ := os.ReadFile(src)
	// A large upload first, sent through a pipe: the test pauses half way
	// and waits for the server's file on disk to hold what was sent.
	big := make([]byte, 12<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, _ := http.NewRequest("POST", c.base+"/ingest", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	done := make(chan *http.Response, 1)
	go func() { done <- c.do(req) }()
	mw.WriteField("csrf", c.csrf())
	mw.WriteField("site", "bulk")
	fw, _ := mw.CreateFormFile("file", "bulk.bin")
	fw.Write(big[:8<<20])
	if got := waitForFile(t, ts.opt.UploadDir, 4<<20); got < 4<<20 {
		t.Fatalf("the server holds %d bytes of the upload on disk while the client sends: not streamed", got)
	}
	fw.Write(big[8<<20:])
	mw.Close()
	pw.Close()
	v := c.waitJob(jobOf(t, <-done))
	if v.State != "ok" {
		t.Fatalf("ingest of the large upload: %+v", v)
	}
	// The committed dump, under its Discourse name.
	v = c.waitJob(jobOf(t, c.uploadResp(c.csrf(), "uploaded", filepath.Base(src), orig)))
	if v.State != "ok" || !strings.Contains(v.Result, "site uploaded") {
		t.Fatalf("ingest job: %+v", v)
	}
	var snaps []snapshotInfo
	c.getJSON("/api/snapshots?site=uploaded", &snaps)
	sum := sha256.Sum256(orig)
	if len(snaps) != 1 || snaps[0].Name != filepath.Base(src) || snaps[0].SHA256 != hex.EncodeToString(sum[:]) || v.Link != "/snapshots/"+snaps[0].ID {
		t.Fatalf("uploaded snapshot: %+v (job link %q)", snaps, v.Link)
	}
	if ents, _ := os.ReadDir(ts.opt.UploadDir); len(ents) != 0 {
		t.Fatalf("uploads left on disk: %v", ents)
	}
	if _, body := c.get("/snapshots/" + snaps[0].ID + "/download"); body != string(orig) {
		t.Fatal("the uploaded backup does not download as it was")
	}
}

// waitForFile waits (up to a minute) until a file below dir holds at least
// n bytes, and returns the largest size seen.
func waitForFile(t *testing.T, dir string, n int64) int64 {
	var best int64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					best = max(best, fi.Size())
				}
			}
			return nil
		})
		if best >= n {
			break
		}
	}
	return best
}

func (c *client) uploadResp(tok, site, name string, data []byte) *http.Response {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("csrf", tok)
	mw.WriteField("site", site)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+"/ingest", &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp := c.do(req)
	resp.Body.Close()
	return resp
}

// TestForget: forgetting asks for confirmation, removes the snapshot
// (signed forget record), and the activity log shows who did it from
// where, the repository's record and the ingests with their keys and
// hosts, and the sign-ins and downloads.
func TestForget(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t).signIn()
	id := tr.ids[0]
	if resp, page := c.get("/snapshots/" + id + "/forget"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="confirm"`) {
		t.Fatalf("forget page: %s", resp.Status)
	}
	c.get("/snapshots/" + tr.ids[1] + "/download")
	if resp, _ := c.post("/snapshots/"+id+"/forget", url.Values{"csrf": {c.csrf()}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forget without confirmation: %s", resp.Status)
	}
	if resp, _ := c.get("/snapshots/" + id); resp.StatusCode != http.StatusOK {
		t.Fatal("an unconfirmed forget removed the snapshot")
	}
	resp, _ := c.post("/snapshots/"+id+"/forget", url.Values{"csrf": {c.csrf()}, "confirm": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sites/forum?forgot=1" {
		t.Fatalf("forget: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if resp, _ := c.get("/snapshots/" + id); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the forgotten snapshot: %s", resp.Status)
	}
	_, page := c.get("/activity")
	for _, want := range []string{
		"<td>admin</td><td>127.0.0.1</td><td>forget " + id[:8],          // the server's action
		"<td>master key</td><td></td><td>forget " + id[:8],              // the repository's record
		"<td>key forum</td><td>forum.example</td><td>ingest",            // the writer's ingests
		"<td>admin</td><td>127.0.0.1</td><td>login</td><td>ok</td>",     // the sign-in
		"<td>admin</td><td>127.0.0.1</td><td>download " + tr.ids[1][:8], // the download
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the activity page lacks %q", want)
		}
	}
}

// TestAPI: the JSON API lists sites, their status, snapshots (of a site),
// one snapshot by an ID prefix as the command line takes it, and drills.
func TestAPI(t *testing.T) {
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, nil)
	c := ts.client(t)
	c.hc.Transport = bearer{}
	var sites []siteInfo
	c.getJSON("/api/sites", &sites)
	if len(sites) != 2 || sites[0].Site != "evil" || sites[1].Site != "forum" || sites[1].Snapshots != 2 || sites[1].Bytes == 0 || sites[1].Stored == 0 {
		t.Fatalf("sites: %+v", sites)
	}
	var status []siteStatus
	c.getJSON("/api/status", &status)
	if len(status) != 2 || status[1].Newest == nil || status[1].Newest.ID != tr.ids[1] || status[1].LastDrill != nil {
		t.Fatalf("status: %+v", status)
	}
	var snaps []snapshotInfo
	c.getJSON("/api/snapshots?site=forum", &snaps)
	if len(snaps) != 2 || snaps[0].ID != tr.ids[1] || snaps[0].KeyName != "forum" || snaps[0].Summary == nil || snaps[0].Tables() == 0 {
		t.Fatalf("snapshots of forum: %+v", snaps)
	}
	c.getJSON("/api/snapshots?site=nowhere", &snaps)
	if len(snaps) != 0 {
		t.Fatalf("snapshots of no site: %+v", snaps)
	}
	var one snapshotDetail
	c.getJSON("/api/snapshots/"+tr.ids[0][:6], &one)
	if one.ID != tr.ids[0] || one.Drills == nil {
		t.Fatalf("snapshot by prefix: %+v", one)
	}
	if resp, _ := c.get("/api/snapshots/0000000000"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("no such snapshot: %s", resp.Status)
	}
}

type bearer struct{}

func (bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+testToken)
	return http.DefaultTransport.RoundTrip(req)
}

// TestSetPassword: the users file holds argon2id hashes with the
// production parameters (64 MiB, 3 passes), mode 0600, never the
// password; short passwords and bad user names are refused; a damaged or
// planted file with huge parameters is refused when the server starts.
func TestSetPassword(t *testing.T) {
	saved := hashParams
	hashParams = argonParams{memory: 64 << 10, time: 3, threads: 2}
	t.Cleanup(func() { hashParams = saved })
	dir := t.TempDir()
	if err := SetPassword(dir, "admin", []byte("short")); err == nil {
		t.Fatal("a short password was taken")
	}
	if err := SetPassword(dir, "../x", []byte(testPassword)); err == nil {
		t.Fatal("a bad user name was taken")
	}
	if err := SetPassword(dir, "alice", []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(dir, "bob", []byte("another long password")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, usersFile)
	fi, _ := os.Stat(path)
	b, _ := os.ReadFile(path)
	if fi.Mode().Perm() != 0o600 || bytes.Contains(b, []byte(testPassword)) || !bytes.Contains(b, []byte("alice $argon2id$v=19$m=65536,t=3,p=2$")) {
		t.Fatalf("users file (%v): %s", fi.Mode(), b)
	}
	us, err := loadUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !us.check("alice", []byte(testPassword)) || us.check("alice", []byte("another long password")) || us.check("carol", []byte(testPassword)) {
		t.Fatal("password checks")
	}
	os.WriteFile(path, []byte("eve $argon2id$v=19$m=99999999,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\n"), 0o600)
	if _, err := loadUsers(dir); err == nil {
		t.Fatal("a hash asking for 100 GB was accepted")
	}
}

// TestDownloadStreams: a download of a multi-megabyte backup reaches the
// client while the restore is still running (the handler never holds the
// file), in writes no larger than the restore's, and whole.
func TestDownloadStreams(t *testing.T) {
	tr := newTestRepo(t)
	big := make([]byte, 24<<20)
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range big {
		big[i] = byte(rnd.Uint32() % 16) // compressible, not uniform
	}
	path := filepath.Join(t.TempDir(), "big.bin")
	os.WriteFile(path, big, 0o600)
	id := tr.ingest(t, path, larder.IngestOptions{Site: "big"})
	ts := newServer(t, tr, tr.master, nil)
	var restored atomic.Int64
	ts.restore = func(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, w io.Writer) (uint64, error) {
		return larder.Restore(larder.WithProgress(ctx, func(_ string, done, _ int64) { restored.Store(done) }), r, snap, w)
	}
	sid, _ := ts.sessions.create(testUser, time.Now())
	req, _ := http.NewRequest("GET", "/snapshots/"+id+"/download", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid})
	rec := &streamRecorder{header: http.Header{}, restored: &restored, firstAt: -1, h: sha256.New()}
	ts.ServeHTTP(rec, req)
	if rec.status != http.StatusOK || rec.n != int64(len(big)) || hex.EncodeToString(rec.h.Sum(nil)) != hex.EncodeToString(sha256Of(big)) {
		t.Fatalf("download: status %d, %d of %d bytes", rec.status, rec.n, len(big))
	}
	if rec.firstAt < 0 || rec.firstAt > int64(len(big))/2 {
		t.Fatalf("the first byte reached the client when %d of %d bytes were restored: the handler holds the file", rec.firstAt, len(big))
	}
	if rec.maxWrite > 4<<20 {
		t.Fatalf("a write of %d bytes to the client", rec.maxWrite)
	}
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// streamRecorder is a ResponseWriter that keeps nothing but a hash, and
// notes how far the restore was at its first write.
type streamRecorder struct {
	header   http.Header
	status   int
	n        int64
	maxWrite int
	firstAt  int64
	restored *atomic.Int64
	h        interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (r *streamRecorder) Header() http.Header { return r.header }
func (r *streamRecorder) WriteHeader(s int)   { r.status = s }
func (r *streamRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.firstAt < 0 {
		r.firstAt = r.restored.Load()
	}
	r.n += int64(len(p))
	r.maxWrite = max(r.maxWrite, len(p))
	r.h.Write(p)
	return len(p), nil
}
