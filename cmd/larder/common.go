package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "repo", Aliases: []string{"r"}, EnvVars: []string{"LARDER_REPO"}, Usage: "repository: a folder, or s3:https://HOST[:PORT]/BUCKET[/PREFIX]"},
		&cli.StringFlag{Name: "key", Aliases: []string{"k"}, EnvVars: []string{"LARDER_KEY"}, Usage: "key file (default: the master key stored in the repository)"},
		&cli.StringFlag{Name: "password-file", EnvVars: []string{"LARDER_PASSWORD_FILE"}, Usage: "read the passphrase from this file"},
		&cli.StringFlag{Name: "password-command", EnvVars: []string{"LARDER_PASSWORD_COMMAND"}, Usage: "run this shell command to get the passphrase"},
		&cli.StringFlag{Name: "cache-dir", EnvVars: []string{"LARDER_CACHE_DIR"}, Usage: "local cache folder (default: ~/.cache/larder)"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable output: one JSON object per line"},
		&cli.IntFlag{Name: "connections", Value: backend.DefaultConnections, EnvVars: []string{"LARDER_CONNECTIONS"}, Usage: "storage operations (S3 connections) at once"},
		&cli.StringFlag{Name: "cacert", EnvVars: []string{"LARDER_CACERT"}, Usage: "PEM file of the certificates an S3 server's certificate must chain to"},
		&cli.StringSliceFlag{Name: "option", Aliases: []string{"o"}, Usage: "storage option KEY=VALUE: s3.region, s3.bucket-lookup (auto, dns, path)"},
		&cli.DurationFlag{Name: "retry-lock", Usage: "retry for up to this long (e.g. 5m) when the repository is locked"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors"},
	}
}

// minMasterPassphrase is the shortest master passphrase init and key
// passwd take without --allow-short-passphrase: the master key file is
// stored in the repository, where the storage provider can try
// passphrases offline (argon2id slows it).
const minMasterPassphrase = 12

// checkPassphraseLength refuses a short passphrase for a master key
// unless --allow-short-passphrase, and warns when allowed.
func checkPassphraseLength(c *cli.Context, role crypto.Role, pass []byte) error {
	if role != crypto.RoleMaster {
		return nil
	}
	if n := utf8.RuneCount(pass); n < minMasterPassphrase {
		if !c.Bool("allow-short-passphrase") {
			return usagef("the master passphrase has %d characters: give at least %d (its key file sits in the repository, open to offline guessing), or --allow-short-passphrase", n, minMasterPassphrase)
		}
		warn(c, "the master passphrase has only %d characters: anyone who can read the repository can try to guess it offline", n)
	}
	return nil
}

// errNoKey: no key could be found for an operation that needs one.
var errNoKey = errors.New("no key")

// out prints to the command's output unless --quiet. Its error is not
// returned: the output writer keeps the first one and run reports it (see
// stickyWriter), so that a failed write fails the command.
func out(c *cli.Context, format string, a ...any) {
	if c.Bool("quiet") || c.Bool("json") {
		return
	}
	_, _ = fmt.Fprintf(c.App.Writer, format, a...) // kept by stickyWriter
}

// printErr prints to stderr. A failure to write there is dropped: stderr
// is where failures are reported, so there is nowhere left to report it.
func printErr(c *cli.Context, format string, a ...any) {
	_, _ = fmt.Fprintf(c.App.ErrWriter, format, a...)
}

// problem prints one "larder: ..." line to stderr: a problem found, the
// command goes on.
func problem(c *cli.Context, format string, a ...any) {
	printErr(c, "larder: "+format+"\n", a...)
}

// warn prints a warning line to stderr.
func warn(c *cli.Context, format string, a ...any) {
	printErr(c, "larder: warning: "+format+"\n", a...)
}

// emit writes one JSON object (with --json). Callers return its error: a
// consumer that stopped reading ends the command.
func emit(c *cli.Context, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // lines for programs, not for pages: "&&" stays "&&"
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := c.App.Writer.Write(b.Bytes())
	return err
}

func openBackend(c *cli.Context) (backend.Backend, error) {
	loc := c.String("repo")
	if loc == "" {
		return nil, usagef("no repository: give --repo or set LARDER_REPO")
	}
	return openBackendAt(c, loc)
}

// openBackendAt opens the storage at loc with the global options
// (--connections, --cacert, -o, retry reports).
func openBackendAt(c *cli.Context, loc string) (backend.Backend, error) {
	if c.Int("connections") < 1 || c.Int("connections") > 64 {
		return nil, usagef("--connections %d: give 1 to 64", c.Int("connections"))
	}
	opts := backend.OpenOptions{Connections: c.Int("connections"), CACertFile: c.String("cacert")}
	for _, o := range c.StringSlice("option") {
		k, v, ok := strings.Cut(o, "=")
		switch {
		case !ok:
			return nil, usagef("-o %s: want KEY=VALUE", o)
		case k == "s3.region":
			opts.S3Region = v
		case k == "s3.bucket-lookup":
			if v != "auto" && v != "dns" && v != "path" {
				return nil, usagef("-o s3.bucket-lookup=%s: want auto, dns or path", v)
			}
			opts.S3BucketLookup = v
		default:
			return nil, usagef("-o %s: unknown option (known: s3.region, s3.bucket-lookup)", k)
		}
	}
	if isTerminal(c.App.ErrWriter) && !c.Bool("quiet") && !c.Bool("json") {
		opts.Report = func(op string, h backend.Handle, err error, wait time.Duration) {
			warn(c, "%s %s failed, retrying in %s: %v", op, h, wait, err)
		}
	}
	be, err := backend.Open(loc, opts)
	if err != nil {
		return nil, usagef("%w", err)
	}
	return be, nil
}

// passphrase returns the passphrase from --password-file,
// --password-command or the terminal.
func passphrase(c *cli.Context, prompt string, confirm bool) ([]byte, error) {
	if p := c.String("password-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase: %w", err)
		}
		return firstLine(b), nil
	}
	if cmd := c.String("password-command"); cmd != "" {
		b, err := exec.CommandContext(c.Context, "sh", "-c", cmd).Output()
		if err != nil {
			return nil, fmt.Errorf("password command: %w", err)
		}
		return firstLine(b), nil
	}
	pw, err := promptPassphrase(prompt, confirm)
	if errors.Is(err, errNoTerminal) {
		return nil, fmt.Errorf("%w: no terminal to ask for it; set LARDER_PASSWORD_FILE or --password-command", crypto.ErrPassphraseRequired)
	}
	return pw, err
}

// errNoTerminal: there is no terminal to ask on.
var errNoTerminal = errors.New("no terminal")

// promptPassphrase asks on the terminal (twice with confirm).
func promptPassphrase(prompt string, confirm bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errNoTerminal
	}
	defer func() { _ = tty.Close() }() // a terminal: nothing written to lose
	read := func(p string) ([]byte, error) {
		if _, err := fmt.Fprint(tty, p); err != nil {
			return nil, err
		}
		b, err := term.ReadPassword(int(tty.Fd()))
		// The newline after the hidden input is cosmetic: an error
		// writing it changes nothing.
		_, _ = fmt.Fprintln(tty)
		return b, err
	}
	pw, err := read(prompt)
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := read("Enter it again: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(pw) {
			return nil, errors.New("the passphrases differ")
		}
	}
	return pw, nil
}

func firstLine(b []byte) []byte {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return []byte(strings.TrimRight(s, "\r"))
}

// keyProblem marks err as a problem with the key (exit code 12) without
// changing its message.
type keyProblem struct{ err error }

func (e keyProblem) Error() string   { return e.err.Error() }
func (e keyProblem) Unwrap() []error { return []error{e.err, errNoKey} }

// loadKey reads the key to open the repository with: --key, else the
// master key file stored in the repository. It also returns the passphrase
// that opened the key (nil for a key without one).
func loadKey(c *cli.Context, be backend.Backend) (repo.Key, []byte, error) {
	path := c.String("key")
	var data []byte
	var err error
	if path != "" {
		if data, err = os.ReadFile(path); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", errNoKey, err)
		}
	} else {
		data, err = repo.MasterKeyFile(c.Context, be)
		if errors.Is(err, repo.ErrNoRepository) {
			return nil, nil, err
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: give --key or set LARDER_KEY (the repository holds no master key file: %w)", errNoKey, err)
		}
		path = "the repository's master key"
	}
	hdr, err := crypto.ParseKeyFileHeader(data)
	if err != nil {
		// Not a key file (or one of a newer version): a key problem.
		return nil, nil, fmt.Errorf("%s: %w", path, keyProblem{err})
	}
	if c.String("key") != "" {
		var me *crypto.KeyFileModeError
		if err := crypto.CheckKeyFileMode(path); errors.As(err, &me) {
			warn(c, "%v", err)
		}
	}
	var pass []byte
	if hdr.Protected {
		if pass, err = passphrase(c, fmt.Sprintf("Passphrase for %v key %s: ", hdr.Role, hdr.ID), false); err != nil {
			return nil, nil, err
		}
	}
	kf, err := crypto.ParseKeyFile(data, pass)
	// argon2id used 64 MiB or more: give it back to the system now, so that
	// it does not add to the peak of the work that follows.
	debug.FreeOSMemory()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case kf.Master != nil:
		return kf.Master, pass, nil
	case kf.Write != nil:
		return kf.Write, pass, nil
	case kf.Audit != nil:
		return kf.Audit, pass, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: empty key file", path, errNoKey)
}

// openRepo opens the repository with the key.
func openRepo(c *cli.Context) (*repo.Repo, error) {
	r, _, err := openRepoKey(c)
	return r, err
}

// openRepoKey opens the repository and also returns the key.
func openRepoKey(c *cli.Context) (*repo.Repo, repo.Key, error) {
	be, err := openBackend(c)
	if err != nil {
		return nil, nil, err
	}
	if _, err := repo.ReadConfig(c.Context, be); err != nil {
		return nil, nil, err
	}
	key, _, err := loadKey(c, be)
	if err != nil {
		return nil, nil, err
	}
	r, err := repo.Open(c.Context, be, key)
	if err != nil {
		return nil, nil, err
	}
	if d := c.String("cache-dir"); d != "" {
		r.SetCacheDir(d)
	}
	r.SetUploads(c.Int("connections"))
	r.SetReadAhead(c.Int("connections"))
	r.SetRetryLock(c.Duration("retry-lock"))
	return r, key, nil
}

// closeRepo prints the warnings about objects the command passed by (junk,
// damage, forgeries) and closes the repository. It runs deferred, after
// the command's result: a failure to close the local cache (a copy of
// what the repository holds, rebuilt when needed) is a warning.
func closeRepo(c *cli.Context, r *repo.Repo) {
	printWarnings(c, r)
	if err := r.Close(); err != nil {
		warn(c, "closing the local cache: %v", err)
	}
}

// printWarnings prints what the repository passed by since the last call.
func printWarnings(c *cli.Context, r *repo.Repo) {
	for _, w := range r.Warnings() {
		if c.Bool("json") {
			// Deferred, with no error to return to: stickyWriter keeps
			// a failed write and run reports it.
			_ = emit(c, map[string]any{"message_type": "warning", "object": w.Object, "message": w.What})
			continue
		}
		warn(c, "%s", w)
	}
}

// isTerminal reports whether w is a terminal (progress goes there only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeKeyFile writes a key file with mode 0600, refusing to replace one.
func writeKeyFile(path string, data []byte) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: not replaced", path)
	}
	return crypto.WriteKeyFile(path, data)
}

// siteFlag is --site for the commands that work per site.
func siteFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "site", Usage: usage}
}

// findSnapshot resolves a snapshot argument: an ID prefix, or "latest",
// the newest usable snapshot (by backup time) of --site, or of the only
// site there is.
func findSnapshot(c *cli.Context, r *repo.Repo, arg string) (*repo.Snapshot, error) {
	if arg != "latest" {
		s, err := r.FindSnapshot(c.Context, arg)
		if err != nil {
			return nil, err
		}
		if site := c.String("site"); site != "" && s.Manifest != nil && s.SiteName() != site {
			return nil, usagef("snapshot %s is of site %q, not %q", s.ID.Short(), s.SiteName(), site)
		}
		return s, nil
	}
	snaps, err := r.Snapshots(c.Context, true)
	if err != nil {
		return nil, err
	}
	site := c.String("site")
	var best *repo.Snapshot
	sites := map[string]bool{}
	for _, s := range snaps {
		s.AllowRejected = c.Bool("allow-rejected")
		if s.Usable() != nil || site != "" && s.SiteName() != site {
			continue
		}
		sites[s.SiteName()] = true
		if best == nil || larder.Newer(s, best) {
			best = s
		}
	}
	switch {
	case best == nil && site != "":
		return nil, fmt.Errorf("latest: %w: no snapshot of site %q", backend.ErrNotFound, site)
	case best == nil:
		return nil, fmt.Errorf("latest: %w: no snapshot", backend.ErrNotFound)
	case len(sites) > 1:
		return nil, usagef("latest: the repository holds %d sites (%s): give --site", len(sites), strings.Join(sortedKeys(sites), ", "))
	}
	return best, nil
}

// sortedKeys returns a set's members in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k == "" {
			k = "(none)"
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
