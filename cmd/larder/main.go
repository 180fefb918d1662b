// Command larder archives forum backups: deduplicated, encrypted, and
// restored bit for bit. See README.md for the commands and exit codes, and
// docs/DESIGN.md for the packages this command drives; it holds flags,
// output and exit codes only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

// Exit codes: documented in README.md, stable.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitPartial     = 3 // some files could not be ingested (restic's 3)
	exitDamaged     = 4
	exitNotFound    = 5 // no backup file to ingest, no snapshot to drill
	exitStale       = 6 // status --max-age: a site is stale or its drill failed
	exitNoRepo      = 10
	exitLocked      = 11
	exitKey         = 12
	exitVerify      = 13
	exitInterrupted = 130
)

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit on Go's memory: the collector runs a little more
		// often instead of letting garbage double the heap, which keeps
		// an ingest of any size near 100 MiB of RSS at no measured cost
		// in time. GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	os.Exit(profiled(func() int { return run(os.Args, os.Stdin, os.Stdout, os.Stderr) }))
}

// profiled runs fn with a CPU profile written to the file that
// LARDER_CPUPROFILE names, if it is set (for measuring the benchmarks'
// runs; not a user feature).
func profiled(fn func() int) int {
	path := os.Getenv("LARDER_CPUPROFILE")
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "larder: LARDER_CPUPROFILE: %v\n", err)
		return fn()
	}
	// The profile is a measuring aid: a failed close loses only it.
	defer func() { _ = f.Close() }()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "larder: LARDER_CPUPROFILE: %v\n", err)
		return fn()
	}
	defer pprof.StopCPUProfile()
	return fn()
}

// defaultMemoryLimit is the soft limit of Go's memory (GOMEMLIMIT).
const defaultMemoryLimit = 80 << 20

// run is the whole program; tests call it in process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdin, stdout, stderr)
}

// runContext is run until ctx is done (Ctrl-C, SIGTERM).
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	output := &stickyWriter{w: stdout}
	app := newApp(stdin, output, stderr)
	err := app.RunContext(ctx, interspersed(app, args))
	if werr := output.Err(); err == nil && werr != nil {
		err = fmt.Errorf("writing the output: %w", werr)
	}
	code := exitCode(err)
	if err != nil && code != exitDamaged {
		// The last word goes to stderr; if that fails too, the exit code
		// still tells.
		_, _ = fmt.Fprintf(stderr, "larder: %s\n", errorLine(ctx, err))
	}
	return code
}

// stickyWriter is the commands' standard output: it keeps the first write
// error (a full disk, a closed pipe), so that run fails a command whose
// output was lost even where the printing helpers (out) return nothing.
// After an error it writes nothing more.
type stickyWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// Write writes p to the output, or fails with the first error at once.
func (s *stickyWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// Err returns the first write error, or nil.
func (s *stickyWriter) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// statusError carries an exit code that is not a failure (nothing to do,
// damaged but stored) or a verification failure.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// usageError marks a misuse of the command line (exit code 2, whatever
// error it wraps).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef makes a usageError; %w keeps a cause, as with fmt.Errorf.
func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// exitCode is the one table from errors to exit codes.
func exitCode(err error) int {
	var se *statusError
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, repo.ErrNoRepository):
		return exitNoRepo
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, crypto.ErrWrongPassphrase), errors.Is(err, repo.ErrWrongKey),
		errors.Is(err, repo.ErrPermission), errors.Is(err, crypto.ErrPassphraseRequired),
		errors.Is(err, errNoKey):
		return exitKey
	case errors.Is(err, larder.ErrVerify), errors.Is(err, recompress.ErrPack), errors.Is(err, repo.ErrRejected),
		errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrBlob):
		return exitVerify
	case isCLIUsage(err):
		return exitUsage
	}
	return exitFailure
}

// isCLIUsage recognises urfave/cli's own complaints about flags and
// arguments.
func isCLIUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"flag provided but not defined", "Required flag", "invalid value", "flag needs an argument", "No help topic"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// errorLine is the line that reports err: "interrupted" when ctx was
// (a signal) and err is what that did, not Go's "context canceled".
func errorLine(ctx context.Context, err error) string {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return oneLine(err.Error())
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// interspersed moves a command's flags that follow its arguments in
// front of them ("restore ID -o FILE"): urfave/cli stops reading flags at
// the first argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Find the (sub)command, skipping global flags.
	i := 1
	var cmd *cli.Command
	cmds := app.Commands
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if f := findFlag(app.Flags, a); f != nil && takesValue(f) && !strings.Contains(a, "=") {
				i++
			}
			i++
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		i++
		if len(cmds) == 0 {
			break
		}
	}
	if cmd == nil || i >= len(args) || cmd.SkipFlagParsing {
		return args
	}
	// Global flags given after the command move before it; the command's
	// flags move before its arguments.
	var global, flags, rest []string
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			rest = append(rest, args[j:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			dst := &flags
			f := findFlag(cmd.Flags, a)
			if f == nil {
				if f = findFlag(app.Flags, a); f == cli.HelpFlag {
					// The command's help, whatever else was given.
					return append(append([]string{}, args[:i]...), a)
				}
				if f != nil {
					dst = &global
				}
			}
			*dst = append(*dst, a)
			if f != nil && takesValue(f) && !strings.Contains(a, "=") && j+1 < len(args) {
				j++
				*dst = append(*dst, args[j])
			}
			continue
		}
		rest = append(rest, a)
	}
	out := append([]string{}, args[:1]...)
	out = append(out, global...)
	out = append(out, args[1:i]...)
	out = append(out, flags...)
	return append(out, rest...)
}

func findFlag(flags []cli.Flag, arg string) cli.Flag {
	name := strings.TrimLeft(arg, "-")
	if k := strings.IndexByte(name, '='); k >= 0 {
		name = name[:k]
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "larder",
		Usage:     "deduplicating, encrypted archiver of forum backups, restored bit for bit",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors go to main's exit-code table, never to os.Exit here.
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		Flags:           globalFlags(),
		Commands: []*cli.Command{
			initCommand(), keyCommand(), ingestCommand(), snapshotsCommand(), statusCommand(), restoreCommand(),
			drillCommand(), serveCommand(), auditCommand(), checkCommand(), forgetCommand(), pruneCommand(), unlockCommand(), repairCommand(), copyCommand(), statsCommand(),
		},
		OnUsageError: onUsageError,
	}
	var setHook func([]*cli.Command)
	setHook = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			setHook(c.Subcommands)
		}
	}
	setHook(app.Commands)
	app.Version = moduleVersion()
	app.Action = runNoCommand
	app.Commands = append(app.Commands, docCommands()...)
	app.Flags = append(app.Flags, cli.HelpFlag) // urfave/cli adds it only with its own help command
	setNoSubcommand(app.Commands)
	return app
}

// onUsageError turns urfave/cli's usage errors into one line (no help
// dump) with the usage exit code.
func onUsageError(c *cli.Context, err error, isSub bool) error {
	return &usageError{suggestFlag(c, err)}
}
