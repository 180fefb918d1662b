package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/internal/web"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "the admin web page and its JSON API (master key; an audit key gives a read-only view); docs/WEB.md",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8088", Usage: "address to listen on"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with this certificate (PEM)"},
			&cli.StringFlag{Name: "tls-key", Usage: "the certificate's private key (PEM)"},
			&cli.StringFlag{Name: "state-dir", EnvVars: []string{"LARDER_STATE_DIR"}, Usage: "folder of the users file and the activity log (default: $XDG_STATE_HOME/larder, else ~/.local/state/larder)"},
			&cli.BoolFlag{Name: "set-password", Usage: "set --user's password (asked, or --new-password-file) and exit"},
			&cli.StringFlag{Name: "user", Value: "admin", Usage: "with --set-password: the user"},
			&cli.StringFlag{Name: "new-password-file", Usage: "with --set-password: read the new password from this file"},
			&cli.StringFlag{Name: "token-file", Usage: "a file holding the bearer token scripts send to the API"},
			&cli.BoolFlag{Name: "behind-proxy", Usage: "trust X-Forwarded-For from a proxy on this machine (loopback) as the client's address"},
			&cli.BoolFlag{Name: "postgres", Usage: "offer PostgreSQL drills (as drill --postgres)"},
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of the PostgreSQL programs (default: searched)"},
			&cli.StringFlag{Name: "pg-user", Usage: "as root, the OS user that runs the scratch PostgreSQL (default: postgres, else nobody)"},
			&cli.StringFlag{Name: "tmp", Usage: "folder for drills' restored files and uploads (default: $TMPDIR, else /tmp)"},
			&cli.Int64Flag{Name: "max-upload", Value: 64 << 30, Usage: "the largest upload, in bytes (0: no limit)"},
		},
		Action: runServe,
	}
}

// stateDir is where serve keeps its users file and activity log: not in
// the cache, which is only ever a copy.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String("state-dir"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "larder"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usagef("no state folder: give --state-dir (%w)", err)
	}
	return filepath.Join(home, ".local", "state", "larder"), nil
}

func runServe(c *cli.Context) error {
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	if c.Bool("set-password") {
		return setPassword(c, state)
	}
	if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
		return usagef("serve: give both --tls-cert and --tls-key, or neither")
	}
	token, err := readToken(c)
	if err != nil {
		return err
	}
	opts := larder.DrillOptions{Postgres: c.Bool("postgres"), PGBin: c.String("pg-bin"), PGUser: c.String("pg-user"), TempDir: c.String("tmp")}
	opts.Host, _ = os.Hostname() // empty when unknown: records go without
	if err := drillSetupError(larder.CheckDrill(c.Context, opts)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return usagef("serve --listen %s: %w", c.String("listen"), err)
	}
	defer func() { _ = ln.Close() }() // closed by Shutdown already, or unused
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	if role := r.Role(); role != crypto.RoleMaster && role != crypto.RoleAudit {
		return fmt.Errorf("%w: serve reads manifests: it needs the master or an audit key", repo.ErrPermission)
	}
	tls := c.String("tls-cert") != ""
	srv, err := web.New(web.Options{Repo: r, StateDir: state, Token: token, Secure: tls, BehindProxy: c.Bool("behind-proxy"),
		Drill: opts, Postgres: opts.Postgres, UploadDir: c.String("tmp"), MaxUpload: c.Int64("max-upload"),
		Logf: func(format string, a ...any) { warn(c, format, a...) }})
	if errors.Is(err, web.ErrNoLogin) {
		return usagef("serve: %w", err)
	}
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }() // waits for running actions
	return listen(c, srv, ln, tls, r.Role())
}

// listen serves until the context ends (Ctrl-C, SIGTERM), then shuts the
// server down, letting downloads finish for a few seconds.
func listen(c *cli.Context, h http.Handler, ln net.Listener, tls bool, role crypto.Role) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	what := "master key: downloads and actions"
	if role == crypto.RoleAudit {
		what = "audit key: read-only, no downloads"
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !tls && !isLoopback(host) {
		warn(c, "serving plain HTTP on %s: passwords and backups cross the network unencrypted; use --tls-cert or a proxy with TLS", ln.Addr())
	}
	out(c, "serving %s://%s/ (%s)\n", scheme, ln.Addr(), what)
	errc := make(chan error, 1)
	go func() {
		if tls {
			errc <- hs.ServeTLS(ln, c.String("tls-cert"), c.String("tls-key"))
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-c.Context.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx) // a download cut short at exit: nothing else to do
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func readToken(c *cli.Context) (string, error) {
	p := c.String("token-file")
	if p == "" {
		return "", nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", usagef("serve --token-file: %w", err)
	}
	tok := strings.TrimSpace(string(firstLine(b)))
	if len(tok) < 16 {
		return "", usagef("serve --token-file %s: the token has %d characters: give at least 16 (e.g. openssl rand -hex 32)", p, len(tok))
	}
	return tok, nil
}

func setPassword(c *cli.Context, state string) error {
	if err := web.ValidUser(c.String("user")); err != nil {
		return usagef("serve --user: %w", err)
	}
	pw, err := newPassphrase(c, fmt.Sprintf("New password for %s: ", c.String("user")))
	if err != nil {
		return err
	}
	if len([]rune(string(pw))) < web.MinPassword {
		return usagef("the password has %d characters: give at least %d", len([]rune(string(pw))), web.MinPassword)
	}
	if err := web.SetPassword(state, c.String("user"), pw); err != nil {
		return err
	}
	out(c, "password of %s set (an argon2id hash in %s)\n", c.String("user"), filepath.Join(state, "users"))
	return nil
}
