package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the man page, made from the commands (make install installs it; read it with: larder man | man -l -)",
		Action: func(c *cli.Context) error {
			var b strings.Builder
			writeMan(&b, c.App)
			_, err := io.WriteString(c.App.Writer, b.String())
			return err
		},
	}
}

// exitCodes are the exit codes for the man page, as README.md has them.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "success, including a night with nothing new to store (ingest says so)"},
	{exitFailure, "failure (the message says what and where; drill --exec: the command exited with another status than 0)"},
	{exitUsage, "wrong use of the command line (drill: also no PostgreSQL, a bad --pg-bin, --pg-user or --tmp)"},
	{exitPartial, "some files could not be ingested, others were (ingest; restic's meaning)"},
	{exitDamaged, "a damaged backup was stored exactly and flagged (ingest)"},
	{exitNotFound, "nothing found to work on: no backup file in the folders given (ingest), no snapshot to drill or of the site asked for (drill, status --site, forget --site)"},
	{exitStale, "status: a site's newest backup is older than --max-age, or its last drill failed"},
	{exitNoRepo, "no repository at --repo"},
	{exitLocked, "the repository is locked by another process (--retry-lock waits; larder unlock removes stale locks)"},
	{exitKey, "key problem: a missing or wrong key file, a wrong passphrase, a key of another repository, a revoked key, or a role that may not do this"},
	{exitVerify, "verification failed: a restore whose SHA-256 does not match, a failed drill, problems found by check or audit, a damaged object, a snapshot the repository rejects"},
	{exitInterrupted, "interrupted"},
}

const manDescription = `larder keeps a forum's nightly backups (Discourse's .tar.gz with pg_dump's dump.sql.gz
inside, dump-only .sql.gz, Zulip exports) in a deduplicating, encrypted repository, in a
folder or an S3 bucket. It stores only what changed since the last night and restores the
same file, bit for bit, checked by SHA-256.
The forum server holds a write key that can add snapshots but read and delete nothing; the
master key restores and prunes; an audit key verifies signed, hash-chained snapshot lists
and that every chunk is stored, without seeing content.
Output is for people, or with --json one JSON object per line; errors are one line on
standard error, starting with "larder: ".`

// writeMan writes larder's man page (section 1, roff) from app's commands
// and flags.
func writeMan(w *strings.Builder, app *cli.App) {
	fmt.Fprintf(w, ".TH LARDER 1 \"\" \"larder %s\" \"User Commands\"\n", roffText(moduleVersion()))
	fmt.Fprintf(w, ".SH NAME\nlarder \\- %s\n", roffText(app.Usage))
	w.WriteString(".SH SYNOPSIS\n.B larder\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]\n")
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s\n", roffText(manDescription))
	w.WriteString(".SH GLOBAL OPTIONS\n")
	writeManFlags(w, app.Flags)
	w.WriteString(".SH COMMANDS\n")
	w.WriteString("Flags may come before or after a command's arguments; global options may also follow the command.\n")
	for _, c := range app.Commands {
		writeManCommand(w, c, nil)
	}
	w.WriteString(".SH EXIT STATUS\n")
	for _, e := range exitCodes {
		fmt.Fprintf(w, ".TP\n.B %d\n%s\n", e.code, roffText(e.meaning))
	}
	w.WriteString(".SH ENVIRONMENT\n")
	writeManEnv(w, app)
	w.WriteString(".SH FILES\n.TP\n.I ~/.cache/larder/\n" +
		roffText("the local cache (--cache-dir, LARDER_CACHE_DIR): a copy of what the repository holds, safe to delete") + "\n")
	w.WriteString(".SH SEE ALSO\n" + roffText("README.md, SECURITY.md, docs/FORMAT.md and docs/STORAGE.md in larder's source; larder completion (shell completion)") + "\n")
}

// writeManCommand writes a command's section, then its subcommands'.
func writeManCommand(w *strings.Builder, c *cli.Command, parents []string) {
	if c.Hidden {
		return
	}
	path := append(parents[:len(parents):len(parents)], c.Name)
	title := "larder " + strings.Join(path, " ")
	if c.ArgsUsage != "" && strings.TrimSpace(c.ArgsUsage) != "" {
		title += " " + c.ArgsUsage
	}
	fmt.Fprintf(w, ".SS \"%s\"\n%s\n", roffText(title), roffText(c.Usage))
	if c.Description != "" {
		fmt.Fprintf(w, ".PP\n%s\n", roffText(c.Description))
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(w, ".PP\nAlso: %s.\n", roffText(strings.Join(c.Aliases, ", ")))
	}
	writeManFlags(w, c.Flags)
	for _, s := range c.Subcommands {
		writeManCommand(w, s, path)
	}
}

// writeManFlags writes one tagged paragraph per visible flag.
func writeManFlags(w *strings.Builder, flags []cli.Flag) {
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		var names []string
		for _, n := range f.Names() {
			names = append(names, `\fB`+roffText(dashed(n))+`\fR`)
		}
		tag := strings.Join(names, ", ")
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			fmt.Fprintf(w, ".TP\n%s\n", tag)
			continue
		}
		if d.TakesValue() {
			tag += ` \fIVALUE\fR`
		}
		var notes []string
		if v := d.GetValue(); v != "" && v != "0" && v != "0s" && v != "false" {
			notes = append(notes, "default: "+v)
		}
		if s, ok := f.(cli.DocGenerationSliceFlag); ok && s.IsSliceFlag() {
			notes = append(notes, "may be given more than once")
		}
		if env := d.GetEnvVars(); len(env) > 0 {
			notes = append(notes, "environment: "+strings.Join(env, ", "))
		}
		text := d.GetUsage()
		if len(notes) > 0 {
			text += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, ".TP\n%s\n%s\n", tag, roffText(text))
	}
}

// writeManEnv lists the environment variables of the flags, and those
// larder reads otherwise.
func writeManEnv(w *strings.Builder, app *cli.App) {
	env := map[string]string{
		"GOMEMLIMIT":            "Go's soft memory limit (default: 80 MiB)",
		"AWS_ACCESS_KEY_ID":     "the S3 credential's access key",
		"AWS_SECRET_ACCESS_KEY": "the S3 credential's secret key",
		"AWS_DEFAULT_REGION":    "the S3 region (or -o s3.region=REGION)",
	}
	add := func(flags []cli.Flag) {
		for _, f := range flags {
			if d, ok := f.(cli.DocGenerationFlag); ok {
				for _, e := range d.GetEnvVars() {
					env[e] = "as " + dashed(f.Names()[0])
				}
			}
		}
	}
	add(app.Flags)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			add(c.Flags)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", roffText(n), roffText(env[n]))
	}
}

// roffText escapes text for roff: backslashes and minus signs (so that
// options copy as typed), and a line that would start with a request.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
