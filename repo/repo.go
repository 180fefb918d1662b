// Package repo is larder's repository: immutable, content-named objects in
// a backend (a local folder), holding encrypted packs of deduplicated
// chunks, index files, signed snapshot manifests, drill records and the
// records of forget and prune.
//
// # Roles
//
// The key a repository is opened with decides what it can do (see
// ../shared/DESIGN.md and SECURITY.md): a master key everything; a write
// key adds snapshots and deduplicates against what exists, but reads and
// deletes nothing; an audit key lists and verifies snapshots, chains,
// drills and the presence of every chunk, without seeing content.
//
// # Crash safety
//
// Every object is written to a temporary name, synced, and linked into
// place; packs are written before the index files that name them, index
// files before the snapshots that need them. A crash at any point leaves
// a valid repository: at worst packs no index names, which the next ingest
// does not use and prune removes.
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package repo

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/restic/chunker"
)

// Config is the repository's configuration, signed by the master key.
type Config struct {
	Version  int                   `json:"version"`
	ID       string                `json:"id"`
	Created  time.Time             `json:"created"`
	Master   []byte                `json:"master"` // the master's key record
	Chunking map[string]ChunkSizes `json:"chunking"`
	PackSize int                   `json:"pack_size"`

	master *crypto.KeyRecord
}

// ChunkSizes are the chunk sizes of one class of streams.
type ChunkSizes struct {
	Min     uint `json:"min"`
	Max     uint `json:"max"`
	AvgBits int  `json:"avg_bits"`
}

// Stream classes: text streams (SQL, table data, JSON) change in scattered
// places and get small chunks; bulk streams (tar skeletons with uploads,
// verbatim bytes) get bigger ones (chunk.BenchmarkChunkSizes).
const (
	ClassText = "text"
	ClassBulk = "bulk"
)

// defaultChunking is the chunking of new repositories: the sizes chosen by
// measurement in package chunk.
func defaultChunking() map[string]ChunkSizes {
	sizes := func(p chunk.Params) ChunkSizes { return ChunkSizes{Min: p.Min, Max: p.Max, AvgBits: p.AvgBits} }
	return map[string]ChunkSizes{
		ClassText: sizes(chunk.TextParams(validPol)),
		ClassBulk: sizes(chunk.BulkParams(validPol)),
	}
}

// FormatVersion is the repository format version (the config's version)
// of new repositories, and MinFormatVersion the oldest one this release
// reads and writes: each version from MinFormatVersion to FormatVersion
// in its own format (docs/FORMAT.md). `larder version` prints them.
const (
	FormatVersion    = repoVersion
	MinFormatVersion = minRepoVersion
)

const (
	// repoVersion is the version of new repositories. 2 stores data
	// chunks in frames; 3 keeps chunk lengths out of what writers can read
	// (short index entries, frames with sealed headers, padded snapshot
	// bodies), names list chunks by a plain hash (auditors can verify
	// them) and puts the writer's certificate in each snapshot. Versions
	// from minRepoVersion on are read and written, each in its own format
	// (a version 1 repository keeps one blob per chunk).
	repoVersion    = 3
	minRepoVersion = 1
	// maxConfig bounds the config object.
	maxConfig = 1 << 20
	// defaultPackSize is the target size of a pack.
	defaultPackSize = 16 << 20
	configContext   = crypto.SigContext("larder config v1")
)

// Errors of repositories.
var (
	// ErrNoRepository: there is no repository at the location.
	ErrNoRepository = errors.New("no repository")
	// ErrPermission: the key's role does not allow the operation.
	ErrPermission = errors.New("the key's role does not allow this")
	// ErrWrongKey: the key belongs to another repository or was revoked.
	ErrWrongKey = errors.New("the key does not belong to this repository")
	// ErrCorrupt: an object fails its checks.
	ErrCorrupt = errors.New("repository object is damaged")
)

// Repo is an opened repository.
type Repo struct {
	be       backend.Backend
	cfg      *Config
	key      Key
	master   *crypto.MasterKey
	write    *crypto.WriteKey
	audit    *crypto.AuditKey
	cache    *localCache
	cacheDir string
	now      func() time.Time
	progress progressState

	lastStats IngestStats // of the last snapshot committed (tests, messages)
	uploads   int         // packs a writer uploads at once (SetUploads)
	readAhead int         // fetches a stream runs at once (SetReadAhead)
	retryLock time.Duration

	warnMu   sync.Mutex
	warned   map[string]bool
	warnings []Problem
	scanned  bool // the pack trailers were scanned for copies no index names
}

// warn records a problem with an object that was skipped (junk, damage,
// a forgery): the operation goes on without it. Each is recorded once.
func (r *Repo) warn(obj, what string) {
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	key := obj + "\x00" + what
	if r.warned == nil {
		r.warned = map[string]bool{}
	}
	if r.warned[key] || len(r.warnings) >= maxWarnings {
		return
	}
	r.warned[key] = true
	r.warnings = append(r.warnings, Problem{Object: obj, What: what})
}

// maxWarnings bounds the warnings kept (a flood of junk objects).
const maxWarnings = 1000

// Warnings returns the objects skipped since the last call, and forgets
// them: the command line prints them.
func (r *Repo) Warnings() []Problem {
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

// entries is the encoding of blob entries in this repository's packs and
// index files.
func (r *Repo) entries() pack.EntryFormat {
	if r.cfg.Version >= 3 {
		return pack.EntriesShort
	}
	return pack.EntriesLong
}

// listID is the ID of a list chunk: in version 3 a plain hash of it (the
// auditors, who read chunk lists but hold no chunk-ID key, can verify it),
// before that the keyed hash of data chunks.
func (r *Repo) listID(data []byte) ID {
	if r.cfg.Version >= 3 {
		return plainListID(data)
	}
	return ID(crypto.ChunkID(r.chunkIDKey(), data))
}

// plainListID is SHA-256 of a label and the list chunk.
func plainListID(data []byte) ID {
	h := sha256.New()
	h.Write([]byte("larder list chunk v3\x00"))
	h.Write(data)
	return ID(h.Sum(nil))
}

// SetUploads sets how many packs a writer uploads at once (default 2; the
// command line passes its --connections).
func (r *Repo) SetUploads(n int) { r.uploads = n }

func (r *Repo) uploadSlots() int {
	if r.uploads < 1 {
		return 2
	}
	return r.uploads
}

// SetReadAhead sets how many frames a stream being read fetches at once
// ahead of its reader (default 2; the command line passes its
// --connections).
func (r *Repo) SetReadAhead(n int) { r.readAhead = n }

func (r *Repo) readAheadSlots() int {
	if r.readAhead < 1 {
		return 2
	}
	return r.readAhead
}

// Backend returns the repository's storage.
func (r *Repo) Backend() backend.Backend { return r.be }

// Config returns the repository's configuration.
func (r *Repo) Config() *Config { return r.cfg }

// Key is a key a repository is opened with: *crypto.MasterKey,
// *crypto.WriteKey or *crypto.AuditKey. Every key has an ID, a role, the
// index key, the master's public signing key and a signing key of its own;
// what else it can do it says through the small interfaces below, in the
// manner of age's Identity and Recipient: a repository asks its key for a
// capability, not for its type.
type Key interface {
	KeyID() crypto.KeyID
	Role() crypto.Role
	IndexSecret() *[32]byte
	MasterSigningKey() ed25519.PublicKey
	Sign(ctx crypto.SigContext, msg []byte) ([]byte, error)
}

// chunkingKey cuts and names chunks (master, write).
type chunkingKey interface {
	Chunking() (poly uint64, idKey *[32]byte)
}

// sealingKey starts sessions and seals manifests to the master and the
// auditors (master, write).
type sealingKey interface {
	Recipients() (master, audit [32]byte)
}

// openingKey opens sessions' chunk lists (and, the master, contents) and
// manifests (master, audit).
type openingKey interface {
	OpenSession(ephemeral [32]byte) (*crypto.SessionKeys, error)
	OpenSealed(sealed, ad []byte) ([]byte, error)
}

var (
	_ Key         = (*crypto.MasterKey)(nil)
	_ Key         = (*crypto.WriteKey)(nil)
	_ Key         = (*crypto.AuditKey)(nil)
	_ chunkingKey = (*crypto.MasterKey)(nil)
	_ chunkingKey = (*crypto.WriteKey)(nil)
	_ sealingKey  = (*crypto.MasterKey)(nil)
	_ sealingKey  = (*crypto.WriteKey)(nil)
	_ openingKey  = (*crypto.MasterKey)(nil)
	_ openingKey  = (*crypto.AuditKey)(nil)
)

// Role is the role of the key the repository was opened with.
func (r *Repo) Role() crypto.Role { return r.key.Role() }

// KeyID is the ID of the key the repository was opened with.
func (r *Repo) KeyID() crypto.KeyID { return r.key.KeyID() }

func (r *Repo) need(op string, roles ...crypto.Role) error {
	role := r.Role()
	for _, x := range roles {
		if x == role {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: %s %v key cannot %s", r.be.Location(), ErrPermission, article(role.String()), role, op)
}

// Init makes a new repository in be with master as its master key. The
// master key file (sealed with its passphrase) is stored in the
// repository too, as keys/<id>.key.
func Init(ctx context.Context, be backend.Backend, master *crypto.MasterKey, keyFile []byte) (*Repo, error) {
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.TypeConfig, Name: "config"}); err == nil {
		return nil, fmt.Errorf("%s: a repository already exists", be.Location())
	}
	// Key records left by an interrupted init would not verify against
	// the new master key and break every listing: refuse them.
	var left int
	if err := list(ctx, be, backend.TypeKey, func(string, int64) error { left++; return nil }); err != nil {
		return nil, fmt.Errorf("%s: %w", be.Location(), err)
	}
	if left > 0 {
		return nil, fmt.Errorf("%s: keys/ holds %d objects but there is no config (an interrupted init?); move them away to start afresh", be.Location(), left)
	}
	rec, err := master.Record()
	if err != nil {
		return nil, err
	}
	recBytes, err := rec.MarshalBinary()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := randRead(id); err != nil {
		return nil, err
	}
	cfg := &Config{Version: repoVersion, ID: fmt.Sprintf("%x", id), Created: time.Now().UTC().Truncate(time.Second),
		Master: recBytes, Chunking: defaultChunking(), PackSize: defaultPackSize}
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	sig, err := master.Sign(configContext, body)
	if err != nil {
		return nil, err
	}
	signed, err := json.Marshal(signedConfig{Config: body, Sig: sig})
	if err != nil {
		return nil, err
	}
	// Keys first, the config last: a repository exists once its config does.
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: rec.ID.String() + ".cert"}, backend.Bytes(recBytes)); err != nil {
		return nil, fmt.Errorf("%s: %w", be.Location(), err)
	}
	if keyFile != nil {
		if err := be.Save(ctx, backend.Handle{Type: backend.TypeKey, Name: rec.ID.String() + ".key"}, backend.Bytes(keyFile)); err != nil {
			return nil, fmt.Errorf("%s: %w", be.Location(), err)
		}
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeConfig, Name: "config"}, backend.Bytes(signed)); err != nil {
		return nil, fmt.Errorf("%s: %w", be.Location(), err)
	}
	cfg.master = rec
	return openedRepo(be, cfg, master), nil
}

type signedConfig struct {
	Config []byte `json:"config"`
	Sig    []byte `json:"sig"`
}

// ReadConfig reads and verifies the config (no key needed: the master's
// record in it is self-certified).
func ReadConfig(ctx context.Context, be backend.Backend) (*Config, error) {
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeConfig, Name: "config"}, maxConfig)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w (no config)", be.Location(), ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", be.Location(), err)
	}
	var sc signedConfig
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("%s: config: %w: %w", be.Location(), ErrCorrupt, err)
	}
	var cfg Config
	if err := json.Unmarshal(sc.Config, &cfg); err != nil {
		return nil, fmt.Errorf("%s: config: %w: %w", be.Location(), ErrCorrupt, err)
	}
	if cfg.Version < minRepoVersion || cfg.Version > repoVersion {
		return nil, fmt.Errorf("%s: repository version %d is not supported (this larder reads versions %d to %d)", be.Location(), cfg.Version, minRepoVersion, repoVersion)
	}
	rec, err := crypto.ParseKeyRecord(cfg.Master)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w: master record: %w", be.Location(), ErrCorrupt, err)
	}
	if rec.Role != crypto.RoleMaster || rec.Verify(rec.SignPub) != nil ||
		crypto.Verify(rec.SignPub, configContext, sc.Config, sc.Sig) != nil {
		return nil, fmt.Errorf("%s: config: %w: bad signature", be.Location(), ErrCorrupt)
	}
	for _, class := range []string{ClassText, ClassBulk} {
		s, ok := cfg.Chunking[class]
		if !ok {
			return nil, fmt.Errorf("%s: config: %w: no chunking for %s streams", be.Location(), ErrCorrupt, class)
		}
		if err := (chunk.Params{Pol: validPol, Min: s.Min, Max: s.Max, AvgBits: s.AvgBits}).Validate(); err != nil {
			return nil, fmt.Errorf("%s: config: %w: %w", be.Location(), ErrCorrupt, err)
		}
	}
	if cfg.PackSize < 1<<20 || cfg.PackSize > 1<<30 {
		return nil, fmt.Errorf("%s: config: %w: pack size %d", be.Location(), ErrCorrupt, cfg.PackSize)
	}
	cfg.master = rec
	return &cfg, nil
}

// validPol is an irreducible polynomial used only to validate sizes.
const validPol = chunker.Pol(0x3DA3358B4DC173)

// Open opens the repository in be with a key from a key file: a
// *crypto.MasterKey, *crypto.WriteKey or *crypto.AuditKey.
func Open(ctx context.Context, be backend.Backend, key Key) (*Repo, error) {
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	r := openedRepo(be, cfg, key)
	id := key.KeyID()
	if !key.MasterSigningKey().Equal(cfg.master.SignPub) {
		return nil, fmt.Errorf("%s: %w (key %s was made for another repository)", be.Location(), ErrWrongKey, id)
	}
	if revoked, err := r.revoked(ctx, id); err != nil {
		return nil, err
	} else if revoked {
		return nil, fmt.Errorf("%s: %w: key %s was revoked", be.Location(), ErrWrongKey, id)
	}
	return r, nil
}

// revoked reports whether the master revoked the key.
func (r *Repo) revoked(ctx context.Context, id crypto.KeyID) (bool, error) {
	b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeKey, Name: id.String() + ".revoked"}, crypto.MaxRevocationSize)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	rev, err := crypto.ParseRevocation(b)
	if err != nil || rev.KeyID != id || rev.Verify(r.cfg.master.SignPub) != nil {
		return false, fmt.Errorf("%s: keys/%s.revoked: %w", r.be.Location(), id, ErrCorrupt)
	}
	return true, nil
}

// Close releases the cache.
func (r *Repo) Close() error {
	if r.cache != nil {
		err := r.cache.Close()
		r.cache = nil
		return err
	}
	return nil
}

// SetCacheDir sets the folder of the local cache (default: the user's
// cache folder, larder/<repository ID>).
func (r *Repo) SetCacheDir(dir string) { r.cacheDir = dir }

// framed reports whether new data chunks go into frames (version 2).
func (r *Repo) framed() bool { return r.cfg.Version >= 2 }

// localDir is this repository's folder on the local machine: the cache,
// and the lock files that serialise commits.
func (r *Repo) localDir() string {
	dir := r.cacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "larder")
	}
	return filepath.Join(dir, r.cfg.ID)
}

// localCache opens the cache on first use, without bringing its copy of
// the index up to date.
func (r *Repo) localCache() (*localCache, error) {
	if r.cache == nil {
		c, err := openCacheDir(r.localDir())
		if err != nil {
			return nil, err
		}
		r.cache = c
	}
	return r.cache, nil
}

// openCache opens the cache on first use and brings it up to date.
func (r *Repo) openCache(ctx context.Context) (*localCache, error) {
	if _, err := r.localCache(); err != nil {
		return nil, err
	}
	if err := r.cache.Sync(ctx, r.be, r.indexKey(), r.cfg.master.SignPub, r.warn); err != nil {
		return nil, err
	}
	return r.cache, nil
}

func (r *Repo) indexKey() *[32]byte { return r.key.IndexSecret() }

// openedRepo is a Repo of key; the master's, write or audit pointer is kept
// for what only that role does.
func openedRepo(be backend.Backend, cfg *Config, key Key) *Repo {
	r := &Repo{be: be, cfg: cfg, key: key, now: time.Now}
	switch k := key.(type) {
	case *crypto.MasterKey:
		r.master = k
	case *crypto.WriteKey:
		r.write = k
	case *crypto.AuditKey:
		r.audit = k
	}
	return r
}

// ChunkParams returns the chunking of a class of streams (keys that can
// chunk: master and write).
func (r *Repo) ChunkParams(class string) (chunk.Params, error) {
	ck, ok := r.key.(chunkingKey)
	if !ok {
		return chunk.Params{}, r.need("chunk streams", crypto.RoleMaster, crypto.RoleWrite)
	}
	pol, _ := ck.Chunking()
	s := r.cfg.Chunking[class]
	p := chunk.Params{Pol: chunker.Pol(pol), Min: s.Min, Max: s.Max, AvgBits: s.AvgBits}
	return p, p.Validate()
}

func (r *Repo) chunkIDKey() *[32]byte {
	if ck, ok := r.key.(chunkingKey); ok {
		_, k := ck.Chunking()
		return k
	}
	return nil
}

// OriginalTag is the keyed hash under which an original is recorded in
// snapshot envelopes: writers find originals already stored without the
// repository revealing their SHA-256.
func (r *Repo) OriginalTag(sha [32]byte) ID {
	return ID(crypto.ChunkID(r.chunkIDKey(), append([]byte("larder original v1\x00"), sha[:]...)))
}

// FindOriginal returns the snapshot that stores an original already.
func (r *Repo) FindOriginal(ctx context.Context, sha [32]byte) (string, bool, error) {
	if r.chunkIDKey() == nil {
		return "", false, r.need("look up originals", crypto.RoleMaster, crypto.RoleWrite)
	}
	c, err := r.openCache(ctx)
	if err != nil {
		return "", false, err
	}
	kr, err := r.keyring(ctx)
	if err != nil {
		return "", false, err
	}
	// Only a snapshot whose signature verifies, of a key the master has
	// not revoked before it, vouches for its original.
	accept := func(name string, env *Envelope) bool {
		if r.verifyEnvelope(env, kr) != nil {
			return false
		}
		rev := kr.revoked[env.Writer]
		switch {
		case rev == nil:
			return true
		case rev.HasLast:
			return env.Seq <= rev.LastSeq
		}
		return !env.Claimed.After(rev.Revoked.Add(time.Second))
	}
	if err := c.syncSnapshots(ctx, r.be, accept); err != nil {
		return "", false, err
	}
	return c.Original(r.OriginalTag(sha))
}

// article is "a" or "an" for word.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
