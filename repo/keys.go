package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/crypto"
)

// AddKey stores a key's public record (master only).
func (r *Repo) AddKey(ctx context.Context, rec *crypto.KeyRecord) error {
	if err := r.need("add keys", crypto.RoleMaster); err != nil {
		return err
	}
	if err := rec.Verify(r.master.SignPublic()); err != nil {
		return fmt.Errorf("key %s: %w", rec.ID, err)
	}
	b, err := rec.MarshalBinary()
	if err != nil {
		return err
	}
	return r.be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: rec.ID.String() + ".cert"}, backend.Bytes(b))
}

// Keys lists the repository's keys with whether each was revoked.
func (r *Repo) Keys(ctx context.Context) ([]*crypto.KeyRecord, map[crypto.KeyID]bool, error) {
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return nil, nil, err
	}
	revoked := map[crypto.KeyID]bool{}
	var out []*crypto.KeyRecord
	for id, rec := range recs {
		out = append(out, rec)
		if ok, err := r.revoked(ctx, id); err != nil {
			return nil, nil, err
		} else if ok {
			revoked[id] = true
		}
	}
	return out, revoked, nil
}

// FindKey returns the record of the key whose ID starts with prefix (4 hex
// digits at least, as snapshot IDs for FindSnapshot): the master's or one
// it certified, revoked or not.
func (r *Repo) FindKey(ctx context.Context, prefix string) (*crypto.KeyRecord, error) {
	prefix = strings.ToLower(prefix)
	if len(prefix) < 4 {
		return nil, fmt.Errorf("key ID %q is too short (give at least 4 hex digits)", prefix)
	}
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return nil, err
	}
	var found []*crypto.KeyRecord
	for id, rec := range recs {
		if strings.HasPrefix(id.String(), prefix) {
			found = append(found, rec)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w: no key %s", r.be.Location(), backend.ErrNotFound, prefix)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s: key ID %s is ambiguous (%d keys)", r.be.Location(), prefix, len(found))
}

// Revoke records the master's revocation of a key. It accepts the key's
// snapshots up to last (nil: the key's newest snapshot now; the zero ID:
// none), which must be the key's: anything later from the key is rejected
// everywhere (snapshots lists it as rejected; restore, drill and forget
// pass it by; audit reports it).
func (r *Repo) Revoke(ctx context.Context, id crypto.KeyID, reason string, last *ID) error {
	if err := r.need("revoke keys", crypto.RoleMaster); err != nil {
		return err
	}
	if id == r.master.ID {
		return fmt.Errorf("the master key cannot revoke itself")
	}
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return err
	}
	if recs[id] == nil {
		return fmt.Errorf("%s: %w: no key %s", r.be.Location(), backend.ErrNotFound, id)
	}
	var lastSeq uint64
	var lastID ID
	switch {
	case last == nil:
		if lastSeq, lastID, err = r.chainHead(ctx, id); err != nil {
			return err
		}
	case *last != (ID{}):
		env, err := loadEnvelope(ctx, r.be, last.String())
		if err != nil {
			return err
		}
		if env.Writer != id {
			return fmt.Errorf("snapshot %s was written by key %s, not %s", last.Short(), env.Writer, id)
		}
		lastSeq, lastID = env.Seq, *last
	}
	rev, err := r.master.RevokeAfter(id, reason, r.now(), lastSeq, lastID)
	if err != nil {
		return err
	}
	b, err := rev.MarshalBinary()
	if err != nil {
		return err
	}
	err = r.be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: id.String() + ".revoked"}, backend.Bytes(b))
	if errors.Is(err, backend.ErrExists) {
		return nil
	}
	return err
}

// MasterKeyFile returns the master key file stored in the repository.
func MasterKeyFile(ctx context.Context, be backend.Backend) ([]byte, error) {
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	rec, err := crypto.ParseKeyRecord(cfg.Master)
	if err != nil {
		return nil, err
	}
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeKey, Name: rec.ID.String() + ".key"}, 1<<20)
	if errors.Is(err, backend.ErrNotFound) {
		// A passphrase change stopped between removing the old file and
		// storing the new one (ReplaceMasterKeyFile): the new one is
		// beside it.
		return loadAll(ctx, be, backend.Handle{Type: backend.TypeKey, Name: rec.ID.String() + ".key-new"}, 1<<20)
	}
	return b, err
}

// ReplaceMasterKeyFile stores the master key file sealed with a new
// passphrase (key passwd): the new file is saved beside the old, then
// moved over it.
func (r *Repo) ReplaceMasterKeyFile(ctx context.Context, keyFile []byte) error {
	if err := r.need("change the master passphrase", crypto.RoleMaster); err != nil {
		return err
	}
	name := r.master.ID.String() + ".key"
	tmp := r.master.ID.String() + ".key-new"
	// A new key file an earlier run left; if it stays, Save says so.
	_ = r.be.Remove(ctx, backend.Handle{Type: backend.TypeKey, Name: tmp})
	if err := r.be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: tmp}, backend.Bytes(keyFile)); err != nil {
		return err
	}
	if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeKey, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	if err := r.be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: name}, backend.Bytes(keyFile)); err != nil {
		return err
	}
	return r.be.Remove(ctx, backend.Handle{Type: backend.TypeKey, Name: tmp})
}
