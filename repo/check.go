package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"io"
	"math/rand/v2"

	"github.com/larder/larder/crypto"
)

// Problem is something check or audit found wrong.
type Problem struct {
	Object string // e.g. "data/3f2a…", "snapshots/…"
	What   string
}

func (p Problem) String() string { return p.Object + ": " + p.What }

// CheckOptions tune Check.
type CheckOptions struct {
	// ReadData is the share of data blobs (0 to 1) to decrypt and verify
	// (master key only).
	ReadData float64
}

// CheckResult lists what Check looked at and found.
type CheckResult struct {
	Objects    int
	Bytes      int64
	Packs      int
	Blobs      int
	Snapshots  int
	ReadBlobs  int
	Unindexed  int // packs no index names (left by an interrupted ingest)
	Problems   []Problem
	Structural bool // only the keyless checks ran
}

// Check verifies the repository. With any key (or none, through
// CheckKeyless) every content-named object must hash to its name and the
// config must be signed; with a key that reads the index, every index
// entry must lie inside an existing pack and pack trailers must agree with
// the index; with an audit or master key every chunk a snapshot references
// must be indexed; with the master key and ReadData > 0 a share of the
// data blobs is decrypted and verified.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	res, err := CheckKeyless(ctx, r.be)
	if err != nil {
		return nil, err
	}
	res.Structural = false
	add := func(obj, format string, a ...any) {
		res.Problems = append(res.Problems, Problem{Object: obj, What: fmt.Sprintf(format, a...)})
	}
	packs, _, err := r.allPacks(ctx)
	if err != nil {
		add("index", "%v", err)
		return res, nil
	}
	sizes := map[ID]int64{}
	if err := list(ctx, r.be, backend.TypeData, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			sizes[id] = size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	indexed := map[ID]bool{}
	blobs := map[ID]bool{}
	for _, p := range packs {
		indexed[p.ID] = true
		res.Packs++
		size, ok := sizes[p.ID]
		if !ok {
			add("data/"+p.ID.String(), "named by the index but missing")
			continue
		}
		_, trailer, err := readPackTrailer(ctx, r.be, p.ID, r.indexKey())
		if err != nil {
			add("data/"+p.ID.String(), "%v", err)
			continue
		}
		inTrailer := map[ID]Blob{}
		for _, b := range trailer {
			inTrailer[b.ID] = b
		}
		for _, b := range p.Blobs {
			res.Blobs++
			blobs[b.ID] = true
			if int64(b.Offset)+int64(b.Length) > size {
				add("data/"+p.ID.String(), "blob %s lies past the end", b.ID.Short())
			}
			if t, ok := inTrailer[b.ID]; !ok || t != b {
				add("data/"+p.ID.String(), "blob %s: the index and the pack disagree", b.ID.Short())
			}
		}
	}
	for id := range sizes {
		if !indexed[id] {
			res.Unindexed++
		}
	}
	// References of snapshots.
	if r.master != nil || r.audit != nil {
		snaps, err := r.Snapshots(ctx, true)
		if err != nil {
			add("snapshots", "%v", err)
			return res, nil
		}
		br, err := r.newBlobReader(ctx)
		if err != nil {
			return nil, err
		}
		defer br.close()
		var dataRefs []ID
		seenData := map[ID]bool{}
		for _, s := range snaps {
			res.Snapshots++
			for i, ref := range s.Manifest.Streams {
				var buf []byte
				err := walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
					if !blobs[id] {
						return nil, fmt.Errorf("list chunk %s is missing", id.Short())
					}
					b, err := br.load(ctx, BlobList, id, buf)
					buf = b
					return b, err
				}, func(e ListEntry) error {
					if !blobs[e.ID] {
						add("snapshots/"+s.ID.String(), "stream %d: chunk %s is missing", i, e.ID.Short())
					} else if !seenData[e.ID] {
						seenData[e.ID] = true
						dataRefs = append(dataRefs, e.ID)
					}
					return nil
				})
				if err != nil {
					add("snapshots/"+s.ID.String(), "stream %d: %v", i, err)
				}
			}
		}
		if opts.ReadData > 0 {
			if r.master == nil {
				return nil, r.need("read data", crypto.RoleMaster)
			}
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			var buf []byte
			for _, id := range dataRefs {
				if opts.ReadData < 1 && rng.Float64() >= opts.ReadData {
					continue
				}
				res.ReadBlobs++
				b, err := br.load(ctx, BlobData, id, buf)
				if err != nil {
					add("blob "+id.Short(), "%v", err)
					continue
				}
				buf = b
			}
		}
	}
	return res, nil
}

// CheckKeyless verifies what needs no key: every content-named object
// hashes to its name, packs start with a pack header, and the config is
// signed by the master key it names.
func CheckKeyless(ctx context.Context, be backend.Backend) (*CheckResult, error) {
	res := &CheckResult{Structural: true}
	if _, err := ReadConfig(ctx, be); err != nil {
		if errors.Is(err, ErrNoRepository) {
			return nil, err
		}
		res.Problems = append(res.Problems, Problem{Object: "config", What: err.Error()})
	}
	for _, t := range contentNamed {
		err := list(ctx, be, t, func(name string, size int64) error {
			res.Objects++
			res.Bytes += size
			h := backend.Handle{Type: t, Name: name}
			sum := sha256.New()
			var head [packHeaderSize]byte
			var n int
			err := be.Load(ctx, h, 0, 0, func(rc io.Reader) error {
				sum.Reset()
				n, _ = io.ReadFull(rc, head[:])
				sum.Write(head[:n])
				_, err := io.Copy(sum, rc)
				return err
			})
			if err != nil {
				res.Problems = append(res.Problems, Problem{Object: h.String(), What: err.Error()})
				return nil
			}
			if hex.EncodeToString(sum.Sum(nil)) != name {
				res.Problems = append(res.Problems, Problem{Object: h.String(),
					What: "content does not match its name: bit rot or tampering"})
			}
			if t == backend.TypeData {
				if _, err := parsePackHeader(head[:n]); err != nil {
					res.Problems = append(res.Problems, Problem{Object: h.String(), What: err.Error()})
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
