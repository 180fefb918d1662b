package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServe: serve --set-password stores an argon2id hash (never the
// password); serve refuses to start when nobody could sign in, with half
// of a TLS pair, or with a write key; it listens where --listen says,
// answers the API with the token, and stops at the end of its context.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pass := write("pass", "master passphrase long\n")
	pw := write("pw", "web password long\n")
	token := write("token", "0123456789abcdef0123\n")
	state := filepath.Join(dir, "state")
	base := []string{"larder", "-r", filepath.Join(dir, "repo"), "--password-file", pass, "--cache-dir", filepath.Join(dir, "cache")}
	larder := func(ctx context.Context, stdout io.Writer, args ...string) (int, string) {
		var stderr bytes.Buffer
		code := runContext(ctx, append(append([]string{}, base...), args...), strings.NewReader(""), stdout, &stderr)
		return code, stderr.String()
	}
	ctx := context.Background()
	if code, errs := larder(ctx, io.Discard, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	if code, errs := larder(ctx, io.Discard, "serve", "--state-dir", state, "--listen", "127.0.0.1:0"); code != exitUsage || !strings.Contains(errs, "--set-password") {
		t.Fatalf("serve with no password and no token: %d %s", code, errs)
	}
	if code, errs := larder(ctx, io.Discard, "serve", "--state-dir", state, "--tls-cert", pw); code != exitUsage {
		t.Fatalf("serve with a certificate and no key: %d %s", code, errs)
	}
	if code, errs := larder(ctx, io.Discard, "serve", "--state-dir", state, "--set-password", "--user", "alice", "--new-password-file", write("short", "short\n")); code != exitUsage {
		t.Fatalf("a short password: %d %s", code, errs)
	}
	if code, errs := larder(ctx, io.Discard, "serve", "--state-dir", state, "--set-password", "--user", "alice", "--new-password-file", pw); code != 0 {
		t.Fatalf("serve --set-password: %d %s", code, errs)
	}
	users, _ := os.ReadFile(filepath.Join(state, "users"))
	if !regexp.MustCompile(`^alice \$argon2id\$v=19\$m=65536,t=3,p=2\$`).Match(users) || bytes.Contains(users, []byte("web password")) {
		t.Fatalf("users file: %q", users)
	}
	if code, errs := larder(ctx, io.Discard, "key", "new-write", "--out", filepath.Join(dir, "w.key"), "--no-passphrase"); code != 0 {
		t.Fatalf("key new-write: %d %s", code, errs)
	}
	if code, errs := larder(ctx, io.Discard, "-k", filepath.Join(dir, "w.key"), "serve", "--state-dir", state, "--listen", "127.0.0.1:0"); code != exitKey {
		t.Fatalf("serve with a write key: %d %s", code, errs)
	}

	sctx, stop := context.WithCancel(ctx)
	pr, pwr := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code, errs := larder(sctx, pwr, "serve", "--state-dir", state, "--listen", "127.0.0.1:0", "--token-file", token)
		if code != 0 {
			t.Errorf("serve: %d %s", code, errs)
		}
		pwr.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	m := regexp.MustCompile(`^serving (http://127\.0\.0\.1:\d+)/ \(master key`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("serve's first line: %q (%v)", line, err)
	}
	go io.Copy(io.Discard, pr)
	req, _ := http.NewRequest("GET", m[1]+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/status with the token: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(m[1] + "/api/status")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/status without the token: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop when its context ended")
	}
}
