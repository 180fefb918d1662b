package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "rebuild a snapshot's original file, verified by SHA-256 (master key)",
		ArgsUsage: "SNAPSHOT|latest",
		Flags: []cli.Flag{
			siteFlag("with latest: the newest snapshot of this site"),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here (- for standard output; default: the original name in this folder)"},
			&cli.StringFlag{Name: "canonical", Usage: "write the canonical streams into this folder instead (plain tar, dump.sql; files mode 0600, new folders 0700)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace an existing output file (with --canonical: existing files of the export)"},
			&cli.BoolFlag{Name: "allow-rejected", Usage: "restore a snapshot the repository rejects (a revoked key's)"},
		},
		Action: runRestore,
	}
}

func runRestore(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("restore needs one SNAPSHOT (an ID, its first digits, or latest)")
	}
	r, key, err := openRepoKey(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	// Check the role first: a write key sees no manifest, and an audit key
	// would only fail deep inside the rebuild, after creating files.
	if key.Role() != crypto.RoleMaster {
		return fmt.Errorf("%w: restoring needs the master key", repo.ErrPermission)
	}
	unlock, err := r.ReadLock(c.Context)
	if err != nil {
		return err
	}
	defer unlock()
	snap, err := findSnapshot(c, r, c.Args().First())
	if err != nil {
		return err
	}
	if snap.Manifest == nil {
		return fmt.Errorf("snapshot %s: %w: restoring needs the master key", snap.ID.Short(), repo.ErrPermission)
	}
	snap.AllowRejected = c.Bool("allow-rejected")
	if err := snap.Usable(); err != nil {
		return err
	}
	if dir := c.String("canonical"); dir != "" {
		return runExport(c, r, snap, dir)
	}
	path := c.String("output")
	if path == "-" {
		w := bufio.NewWriterSize(c.App.Writer, 1<<20)
		defer showProgress(c, r)()
		if _, err := larder.Restore(c.Context, r, snap, w); err != nil {
			// Pass on what was restored; the restore's error is the one
			// to report.
			_ = w.Flush()
			return err
		}
		return w.Flush()
	}
	if path == "" {
		if path, err = plainName(snap.Manifest.Name); err != nil {
			return usagef("snapshot %s: %w; give -o FILE", snap.ID.Short(), err)
		}
	}
	if _, err := os.Stat(path); err == nil && !c.Bool("overwrite") {
		return fmt.Errorf("%s exists (give --overwrite to replace it)", path)
	}
	stop := showProgress(c, r)
	n, err := larder.RestoreFile(c.Context, r, snap, path)
	stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "restored", "snapshot": snap.ID.String(), "file": path, "bytes": n, "sha256": snap.Manifest.SHA256})
	}
	out(c, "restored %s (%s), sha256 %s verified\n", path, human(n), snap.Manifest.SHA256)
	return nil
}

// runExport writes the snapshot's canonical form into dir (--canonical)
// and lists the files, or says in one JSON object what was exported.
func runExport(c *cli.Context, r *repo.Repo, snap *repo.Snapshot, dir string) error {
	files, err := larder.Export(c.Context, r, snap, dir, recompress.ExportOptions{Overwrite: c.Bool("overwrite")})
	var ee *recompress.ExistError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w (give --overwrite to replace it)", err)
	}
	if err != nil {
		return err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, f)
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "exported", "snapshot": snap.ID.String(), "folder": dir, "files": paths})
	}
	for _, p := range paths {
		out(c, "%s\n", p)
	}
	return nil
}

// plainName is a snapshot's original name, to restore it under in this
// folder, if it is a plain file name: the name is its writer's claim, and
// a thief of a write key could name a snapshot ".bashrc" or "../x" and
// wait for the admin to restore it in their home folder.
func plainName(name string) (string, error) {
	if name != filepath.Base(name) || strings.HasPrefix(name, ".") || !plainNameRE.MatchString(name) {
		return "", fmt.Errorf("its original name %q is not a plain file name", printable(name))
	}
	return name, nil
}

var plainNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
