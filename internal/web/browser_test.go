package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/larder/larder/internal/testenv"
)

// outputDir is where the browser test leaves its screenshots:
// $LARDER_TEST_OUTPUT/TestName, else a folder in the system's temporary
// folder that the test does not remove.
func outputDir(t *testing.T) string {
	base := os.Getenv("LARDER_TEST_OUTPUT")
	if base == "" {
		base = filepath.Join(os.TempDir(), "larder-test-output")
	}
	dir := filepath.Join(base, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestBrowser drives Debian's headless Chromium through the admin page as
// an admin would: signs in, opens a site's snapshots, downloads one and
// compares its SHA-256 with the original's and the page's, runs a drill
// and waits for its result (the page's own script follows the progress),
// and visits the audit, activity and ingest pages, saving a screenshot of
// each. Nothing the Content-Security-Policy blocks, and no script error,
// may show on the console.
func TestBrowser(t *testing.T) {
	chromium := testenv.NeedTool(t, "chromium")
	tr := forumRepo(t)
	ts := newServer(t, tr, tr.master, func(o *Options) { o.Logf = t.Logf })
	out := outputDir(t)
	downloads := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root (CI)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var problems []string
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Refused to") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(out, name+".png"), png, 0o644)
		})
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			events, _ := ts.log.read()
			t.Fatalf("%s: %v (the server's log: %+v)", what, err, events)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	base := ts.ts.URL

	step("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#password")), shot("1-login"),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#sites")), shot("2-sites"))
	if s := text("#sites"); !strings.Contains(s, "forum") || !strings.Contains(s, "evil") {
		t.Fatalf("the sites page: %q", s)
	}
	step("a site's snapshots", chromedp.Click(chromedp.CSS(`a[href="/sites/forum"]`)), chromedp.WaitVisible(chromedp.CSS("#snapshots")),
		chromedp.WaitVisible(chromedp.CSS("#chart")), shot("3-site"))
	if n := strings.Count(text("#snapshots tbody"), ".tar.gz"); n != 2 {
		t.Fatalf("the site lists %d snapshots, want 2", n)
	}
	newest := tr.ids[1]
	step("a snapshot", chromedp.Click(chromedp.CSS(`a.snap[href="/snapshots/`+newest+`"]`)), chromedp.WaitVisible(chromedp.CSS("#sha256")), shot("4-snapshot"))
	shown := text("#sha256")

	progress := chromedp.Events(ctx, browser.DownloadProgress)
	step("download", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true)})
		return err
	}), chromedp.Click(chromedp.CSS("#download")))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the browser's download was cancelled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(downloads, ev.GUID)
			break
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(tr.files[newest])
	gotSum, origSum := sha256.Sum256(got), sha256.Sum256(orig)
	if gotSum != origSum || hex.EncodeToString(gotSum[:]) != shown {
		t.Fatalf("downloaded %d bytes, SHA-256 %x; original %x; the page shows %s", len(got), gotSum, origSum, shown)
	}

	step("drill", chromedp.Click(chromedp.CSS("#drill")), chromedp.WaitVisible(chromedp.CSS("#job")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("job").getAttribute("data-state") !== "running"`,
		chromedp.WithPollingTimeout(3*time.Minute))); err != nil {
		t.Fatalf("waiting for the drill: %v", err)
	}
	step("drill result", chromedp.WaitVisible(chromedp.CSS("#job-link")), shot("5-drill"))
	if st, res := text("#state"), text("#result"); st != "ok" || !strings.Contains(res, "sha256 verified") {
		t.Fatalf("the drill page says %q: %q", st, res)
	}
	step("the drill on the snapshot page", chromedp.Click(chromedp.CSS("#job-link")), chromedp.WaitVisible(chromedp.CSS("#drills")), shot("6-snapshot-drilled"))
	if s := text("#drills"); !strings.Contains(s, "ok") || !strings.Contains(s, "sha256 verified") {
		t.Fatalf("the snapshot's drills: %q", s)
	}
	for i, p := range []string{"/audit", "/activity", "/ingest", "/sites/evil"} {
		step(p, chromedp.Navigate(base+p), chromedp.WaitVisible(chromedp.CSS("main")), shot(fmt.Sprintf("%d-%s", 7+i, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-"))))
		if p == "/activity" {
			if s := text("#activity"); !strings.Contains(s, "download") || !strings.Contains(s, "login") {
				t.Fatalf("the activity page: %q", s)
			}
		}
	}
	// The hostile names arrive as text, not as elements.
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img, svg script").length`)); err != nil || n != 0 {
		t.Fatalf("elements from writers' names: %d (%v)", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("console: %s", strings.Join(problems, "\n"))
	}
	shots, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(shots) < 10 {
		t.Fatalf("%d screenshots in %s", len(shots), out)
	}
}

func ptr[T any](v T) *T { return &v }
