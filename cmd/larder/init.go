package main

import (
	"fmt"
	"os"

	"github.com/larder/larder"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a repository and its master key",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key-out", Usage: "also write the master key file here (mode 0600)"},
			&cli.BoolFlag{Name: "allow-short-passphrase", Usage: "accept a master passphrase shorter than 12 characters (with a warning)"},
		},
		Action: runInit,
	}
}

func runInit(c *cli.Context) error {
	be, err := openBackend(c)
	if err != nil {
		return err
	}
	if _, err := repo.ReadConfig(c.Context, be); err == nil {
		return fmt.Errorf("%s: a repository exists already", be.Location())
	}
	pass, err := passphrase(c, "Passphrase for the new master key: ", true)
	if err != nil {
		return err
	}
	if len(pass) == 0 {
		return usagef("the master key needs a passphrase")
	}
	if err := checkPassphraseLength(c, crypto.RoleMaster, pass); err != nil {
		return err
	}
	if p := c.String("key-out"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: not replaced", p)
		}
	}
	res, err := larder.Init(c.Context, be, pass)
	if err != nil {
		return err
	}
	r := res.Repo
	defer closeRepo(c, r)
	if p := c.String("key-out"); p != "" {
		if err := writeKeyFile(p, res.KeyFile); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return emit(c, map[string]any{"message_type": "init", "repository": r.Config().ID, "location": be.Location(), "master_key": res.Master.String()})
	}
	out(c, "created repository %s at %s\n", r.Config().ID, be.Location())
	out(c, "master key %s, sealed with your passphrase, is stored in the repository (keys/%s.key)\n", res.Master, res.Master)
	out(c, "without that passphrase nobody can restore anything: keep it safe\n")
	return nil
}
