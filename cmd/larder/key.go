package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "manage keys: new-write, new-audit, list, passwd, revoke",
		Subcommands: []*cli.Command{
			{
				Name:      "new-write",
				Usage:     "make a write key for a forum server (master key)",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Value: "writer", Usage: "a name for the key"},
					&cli.StringFlag{Name: "out", Usage: "write the key file here (mode 0600; required)"},
					&cli.BoolFlag{Name: "no-passphrase", Usage: "store the key without a passphrase (for cron)"},
					&cli.StringFlag{Name: "new-password-file", Usage: "read the new key's passphrase from this file"},
				},
				Action: func(c *cli.Context) error { return runNewKey(c, crypto.RoleWrite) },
			},
			{
				Name:  "new-audit",
				Usage: "make an audit key (master key)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Value: "auditor", Usage: "a name for the key"},
					&cli.StringFlag{Name: "out", Usage: "write the key file here (mode 0600; required)"},
					&cli.StringFlag{Name: "new-password-file", Usage: "read the new key's passphrase from this file"},
				},
				Action: func(c *cli.Context) error { return runNewKey(c, crypto.RoleAudit) },
			},
			{Name: "list", Usage: "list the repository's keys", Action: runKeyList},
			{
				Name:  "passwd",
				Usage: "change a key file's passphrase (the master key's in the repository when no --key is given)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "new-password-file", Usage: "read the new passphrase from this file"},
					&cli.BoolFlag{Name: "allow-short-passphrase", Usage: "accept a master passphrase shorter than 12 characters (with a warning)"},
				},
				Action: runKeyPasswd,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a write or audit key, named by its ID or the first 4 or more of its digits (master key)",
				ArgsUsage: "KEY-ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "reason", Usage: "why, recorded with the revocation"},
					&cli.StringFlag{Name: "last", Usage: "the last snapshot of the key to accept (ID; default: its newest now); later ones are rejected"},
					&cli.BoolFlag{Name: "reject-all", Usage: "accept none of the key's snapshots"},
				},
				Action: runKeyRevoke,
			},
		},
	}
}

func runNewKey(c *cli.Context, role crypto.Role) error {
	// --out is checked here, not with Required: urfave/cli would print the
	// whole help before the one-line error.
	if c.String("out") == "" {
		return usagef("key %s needs --out FILE", c.Command.Name)
	}
	r, key, err := openRepoKey(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	master, ok := key.(*crypto.MasterKey)
	if !ok {
		return fmt.Errorf("%w: making keys needs the master key", repo.ErrPermission)
	}
	var pass []byte
	if role == crypto.RoleAudit || !c.Bool("no-passphrase") {
		if pass, err = newPassphrase(c, fmt.Sprintf("Passphrase for the new %v key: ", role)); err != nil {
			return err
		}
	}
	var rec *crypto.KeyRecord
	var data []byte
	now := time.Now()
	switch role {
	case crypto.RoleWrite:
		k, err := master.NewWriteKey(c.String("name"), now)
		if err != nil {
			return usagef("%w", err)
		}
		rec = k.Record()
		if data, err = k.MarshalKeyFile(pass, nil); err != nil {
			return err
		}
	case crypto.RoleAudit:
		k, err := master.NewAuditKey(c.String("name"), now)
		if err != nil {
			return usagef("%w", err)
		}
		rec = k.Record()
		if data, err = k.MarshalKeyFile(pass, nil); err != nil {
			return err
		}
	}
	if err := writeKeyFile(c.String("out"), data); err != nil {
		return err
	}
	if err := r.AddKey(c.Context, rec); err != nil {
		// The key file is of no use without its record: remove it, and
		// say so when that fails (run prints only the first line of the
		// error, so it is a warning).
		if rerr := os.Remove(c.String("out")); rerr != nil {
			warn(c, "the key was not added, and its key file could not be removed: %v", rerr)
		}
		return err
	}
	if len(pass) == 0 {
		warn(c, "%s holds a write key WITHOUT a passphrase: anyone who reads the file can add snapshots (never read or delete them); keep it mode 0600 on the forum server only", c.String("out"))
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "key_created", "role": role.String(), "id": rec.ID.String(), "name": rec.Name, "file": c.String("out")})
	}
	out(c, "made %v key %s (%s) in %s\n", role, rec.ID, rec.Name, c.String("out"))
	return nil
}

// newPassphrase asks for a new passphrase: --new-password-file, else the
// terminal, twice. Never the passphrase sources of the key that opens the
// repository (--password-file, --password-command): a new key, or a
// changed one, gets a passphrase of its own.
func newPassphrase(c *cli.Context, prompt string) ([]byte, error) {
	if p := c.String("new-password-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading the new passphrase: %w", err)
		}
		if pw := firstLine(b); len(pw) > 0 {
			return pw, nil
		}
		return nil, usagef("%s holds no passphrase (an empty first line)", p)
	}
	pw, err := promptPassphrase(prompt, true)
	if errors.Is(err, errNoTerminal) {
		return nil, usagef("the new passphrase: give --new-password-file FILE (the key's own, not --password-file's), or run on a terminal")
	}
	if err == nil && len(pw) == 0 {
		return nil, usagef("an empty passphrase")
	}
	return pw, err
}

func runKeyList(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	recs, revoked, err := r.Keys(c.Context)
	if err != nil {
		return err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	for _, k := range recs {
		if c.Bool("json") {
			if err := emit(c, map[string]any{"message_type": "key", "id": k.ID.String(), "role": k.Role.String(), "name": k.Name,
				"created": k.Created, "revoked": revoked[k.ID]}); err != nil {
				return err
			}
			continue
		}
		state := ""
		if revoked[k.ID] {
			state = "  REVOKED"
		}
		out(c, "%s  %-6v  %-20s  %s%s\n", k.ID, k.Role, k.Name, k.Created.Format("2006-01-02 15:04"), state)
	}
	return nil
}

func runKeyPasswd(c *cli.Context) error {
	be, err := openBackend(c)
	if err != nil {
		return err
	}
	key, old, err := loadKey(c, be)
	if err != nil {
		return err
	}
	pass, err := newPassphrase(c, "New passphrase: ")
	if err != nil {
		return err
	}
	if string(pass) == string(old) {
		return usagef("the new passphrase is the one the key has: nothing changed")
	}
	if err := checkPassphraseLength(c, key.Role(), pass); err != nil {
		return err
	}
	// Every key file parses to a key that marshals itself again.
	data, err := key.(interface {
		MarshalKeyFile([]byte, *crypto.KDFParams) ([]byte, error)
	}).MarshalKeyFile(pass, nil)
	if err != nil {
		return err
	}
	if path := c.String("key"); path != "" {
		tmp := path + ".new"
		if err := crypto.WriteKeyFile(tmp, data); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		if c.Bool("json") {
			return emit(c, map[string]any{"message_type": "passphrase_changed", "id": key.KeyID().String(), "role": key.Role().String(), "file": path, "in_repository": false})
		}
		out(c, "changed the passphrase of %s\n", path)
		return nil
	}
	r, err := repo.Open(c.Context, be, key)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	if err := r.ReplaceMasterKeyFile(c.Context, data); err != nil {
		return err
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "passphrase_changed", "id": key.KeyID().String(), "role": key.Role().String(),
			"file": "keys/" + key.KeyID().String() + ".key", "in_repository": true})
	}
	out(c, "changed the passphrase of the master key stored in the repository\n")
	return nil
}

func runKeyRevoke(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("key revoke needs one KEY-ID")
	}
	prefix := c.Args().First()
	if !isKeyIDPrefix(prefix) {
		return usagef("key revoke: %q is no key ID: give its 32 hex digits, or the first 4 or more", prefix)
	}
	if c.String("last") != "" && c.Bool("reject-all") {
		return usagef("key revoke: --last and --reject-all exclude each other")
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	rec, err := r.FindKey(c.Context, prefix)
	if err != nil {
		return err
	}
	id := rec.ID
	var last *repo.ID
	switch {
	case c.Bool("reject-all"):
		last = &repo.ID{}
	case c.String("last") != "":
		s, err := r.FindSnapshot(c.Context, c.String("last"))
		if err != nil {
			return err
		}
		last = &s.ID
	}
	if err := r.Revoke(c.Context, id, c.String("reason"), last); err != nil {
		return err
	}
	if c.Bool("json") {
		ev := map[string]any{"message_type": "key_revoked", "id": id.String(), "role": rec.Role.String(), "name": rec.Name,
			"reason": c.String("reason"), "reject_all": c.Bool("reject-all")}
		if last != nil && *last != (repo.ID{}) {
			ev["last_snapshot"] = last.String()
		}
		return emit(c, ev)
	}
	out(c, "revoked key %s\n", id)
	return nil
}

// isKeyIDPrefix reports whether s may start a key ID: 1 to 32 hex digits
// (FindKey says when it is too short).
func isKeyIDPrefix(s string) bool {
	if s == "" || len(s) > 2*crypto.KeyIDSize {
		return false
	}
	for _, r := range strings.ToLower(s) {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
