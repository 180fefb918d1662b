package main

import (
	"fmt"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
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
	if s3, ok := backend.Find[*backend.S3](be); ok {
		// A new bucket, if it is missing and the credential may make it.
		if err := s3.MakeBucket(c.Context); err != nil {
			return err
		}
	}
	pass, err := passphrase(c, "Passphrase for the new master key: ", true)
	if err != nil {
		return err
	}
	if len(pass) == 0 {
		return usagef("the master key needs a passphrase")
	}
	if err := checkPassphraseLength(c, &crypto.MasterKey{}, pass); err != nil {
		return err
	}
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		return err
	}
	master, err := crypto.NewMasterKey(nil, uint64(pol))
	if err != nil {
		return err
	}
	defer master.Erase()
	kf, err := master.MarshalKeyFile(pass, nil)
	if err != nil {
		return err
	}
	if p := c.String("key-out"); p != "" {
		if err := writeKeyFile(p, kf); err != nil {
			return err
		}
	}
	r, err := repo.Init(c.Context, be, master, kf)
	if err != nil {
		return err
	}
	defer closeRepo(c, r)
	if c.Bool("json") {
		return emit(c, map[string]any{"event": "init", "repository": r.Config().ID, "location": be.Location(), "master_key": master.ID.String()})
	}
	out(c, "created repository %s at %s\n", r.Config().ID, be.Location())
	out(c, "master key %s, sealed with your passphrase, is stored in the repository (keys/%s.key)\n", master.ID, master.ID)
	out(c, "without that passphrase nobody can restore anything: keep it safe\n")
	return nil
}
