package larder

import (
	"context"
	"fmt"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo"
	"github.com/larder/larder/repo/backend"
)

// InitResult is what Init made.
type InitResult struct {
	Repo    *repo.Repo // opened with the new master key; the caller closes it
	KeyFile []byte     // the master key file, sealed with the passphrase (also stored in the repository)
	Master  crypto.KeyID
}

// Init makes a repository in be: a new master key (its chunker
// polynomial drawn at random) sealed with passphrase, stored in the
// repository as keys/<id>.key. On S3 the bucket is made first if it is
// missing and the credential may.
func Init(ctx context.Context, be backend.Backend, passphrase []byte) (*InitResult, error) {
	if _, err := repo.ReadConfig(ctx, be); err == nil {
		return nil, fmt.Errorf("%s: a repository exists already", be.Location())
	}
	if s3, ok := backend.Find[*backend.S3](be); ok {
		if err := s3.MakeBucket(ctx); err != nil {
			return nil, err
		}
	}
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("the master key needs a passphrase")
	}
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		return nil, err
	}
	master, err := crypto.NewMasterKey(nil, uint64(pol))
	if err != nil {
		return nil, err
	}
	kf, err := master.MarshalKeyFile(passphrase, nil)
	if err != nil {
		master.Erase()
		return nil, err
	}
	r, err := repo.Init(ctx, be, master, kf)
	if err != nil {
		master.Erase()
		return nil, err
	}
	return &InitResult{Repo: r, KeyFile: kf, Master: master.ID}, nil
}
