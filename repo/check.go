package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
)

// Problem is something check or audit found wrong.
type Problem struct {
	Object string `json:"object"` // e.g. "data/3f2a…", "snapshots/…"
	What   string `json:"message"`
}

func (p Problem) String() string { return p.Object + ": " + p.What }

// CheckOptions tune Check.
type CheckOptions struct {
	// ReadData is the share of packs (0 to 1) whose every claimed chunk is
	// decrypted and matched to its ID (master key only).
	ReadData float64
}

// CheckResult lists what Check looked at and found.
type CheckResult struct {
	Objects    int       `json:"objects"`
	Bytes      int64     `json:"bytes"`
	Packs      int       `json:"packs"`
	Blobs      int       `json:"chunks"`
	Snapshots  int       `json:"snapshots"`
	ReadBlobs  int       `json:"chunks_decrypted"`
	Unindexed  int       `json:"unindexed_packs"` // packs no index names (left by an interrupted ingest)
	Problems   []Problem `json:"problems"`
	Structural bool      `json:"keyless"` // only the keyless checks ran
}

func (res *CheckResult) add(obj, format string, a ...any) {
	res.Problems = append(res.Problems, Problem{Object: obj, What: fmt.Sprintf(format, a...)})
}

// Check verifies the repository, one step per kind of object:
//
//   - with any key or none (CheckKeyless): every object is what its folder
//     says, signed where it should be, and named by its hash where it is;
//   - with a key that reads the index: every index file opens, each of its
//     claims lies in a pack that is there and that pack's trailer lists it;
//   - with an audit or master key: every chunk a snapshot references is
//     claimed by some index file or pack (and the chunk lists are read);
//   - with the master key and ReadData: in that share of the packs, every
//     claimed chunk is decrypted and matched to its ID.
//
// Each problem names the object that has it.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	res, err := CheckKeyless(ctx, r.be)
	if err != nil {
		return nil, err
	}
	res.Structural = false
	trailers, err := r.checkIndexes(ctx, res)
	if err != nil {
		return nil, err
	}
	if r.master == nil && r.audit == nil {
		return res, nil
	}
	if err := r.checkSnapshots(ctx, res); err != nil {
		return nil, err
	}
	if opts.ReadData > 0 {
		if r.master == nil {
			return nil, r.need("read data", crypto.RoleMaster)
		}
		if err := r.checkData(ctx, res, trailers, opts.ReadData); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkIndexes opens every index file and compares each claim with the
// trailer of the pack it names. It returns every pack's trailer claims
// (nil for a pack whose trailer cannot be read).
func (r *Repo) checkIndexes(ctx context.Context, res *CheckResult) (map[ID][]pack.Blob, error) {
	sizes := map[ID]int64{}
	if err := list(ctx, r.be, backend.TypeData, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			sizes[id] = size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	trailers := map[ID][]pack.Blob{}
	for id := range sizes {
		_, blobs, err := pack.ReadTrailer(ctx, r.be, id, r.indexKey())
		if err != nil {
			if transient(err) {
				return nil, err
			}
			res.add("data/"+id.String(), "%v", err)
			trailers[id] = nil
			continue
		}
		res.Packs++
		trailers[id] = blobs
	}
	indexed := map[ID]bool{}
	var names []string
	if err := list(ctx, r.be, backend.TypeIndex, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, name := range names {
		obj := "index/" + name
		f, err := loadIndexFile(ctx, r.be, name, r.indexKey(), r.cfg.master.SignPub)
		if err != nil {
			if transient(err) {
				return nil, err
			}
			res.add(obj, "%v", err)
			continue
		}
		for _, p := range f.Packs {
			indexed[p.ID] = true
			res.Blobs += len(p.Blobs)
			r.checkClaims(res, obj, p, sizes, trailers)
		}
	}
	for id := range sizes {
		if !indexed[id] {
			res.Unindexed++
		}
	}
	return trailers, nil
}

// checkClaims compares an index file's claims about a pack with the pack.
func (r *Repo) checkClaims(res *CheckResult, obj string, p index.Pack, sizes map[ID]int64, trailers map[ID][]pack.Blob) {
	size, ok := sizes[p.ID]
	if !ok {
		res.add(obj, "names pack %s, which is missing", p.ID.Short())
		return
	}
	tr, readable := trailers[p.ID]
	if !readable || tr == nil {
		return // the pack's own problem is reported
	}
	inTrailer := map[pack.Blob]bool{}
	for _, b := range tr {
		inTrailer[b] = true
	}
	bad := 0
	for _, b := range p.Blobs {
		if int64(b.Offset)+int64(b.Length) > size || !inTrailer[b] {
			bad++
		}
	}
	if bad > 0 {
		res.add(obj, "%d claims about pack %s that the pack's trailer does not make (a lying or damaged index file)", bad, p.ID.Short())
	}
}

// checkSnapshots walks every snapshot's chunk lists and finds each chunk
// claimed somewhere.
func (r *Repo) checkSnapshots(ctx context.Context, res *CheckResult) error {
	snaps, err := r.Snapshots(ctx, true)
	if err != nil {
		return err
	}
	res.Problems = append(res.Problems, r.Warnings()...)
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	seen := map[ID]bool{}
	var buf []byte
	checked := map[pack.PackedBlob]bool{}
	for _, s := range snaps {
		res.Snapshots++
		if s.Rejected != "" {
			res.add("snapshots/"+s.ID.String(), "rejected: %s", s.Rejected)
		}
		for i, ref := range s.Manifest.Streams {
			err := walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
				// Every claimed copy of a chunk list is read: a forged
				// one is named, whichever copy a reader would try first.
				if err := r.checkCopies(ctx, br, res, pack.BlobList, id, checked); err != nil {
					return nil, err
				}
				b, err := br.load(ctx, pack.BlobList, id, buf)
				buf = b
				return b, err
			}, func(e listEntry) error {
				if !seen[e.ID] {
					seen[e.ID] = true
					copies, err := br.cache.Copies(e.ID)
					if err != nil {
						return err
					}
					if len(copies) == 0 {
						res.add("snapshots/"+s.ID.String(), "stream %d: chunk %s is in no index and no pack", i, e.ID.Short())
					}
				}
				return nil
			})
			if err != nil {
				if transient(err) {
					return err
				}
				res.add("snapshots/"+s.ID.String(), "stream %d: %v", i, err)
			}
		}
	}
	res.Problems = append(res.Problems, r.Warnings()...)
	return nil
}

// checkCopies reads every claimed copy of a chunk that the key can open
// and check, and names the packs of those that fail.
func (r *Repo) checkCopies(ctx context.Context, br *blobReader, res *CheckResult, t pack.BlobType, id ID, checked map[pack.PackedBlob]bool) error {
	copies, err := br.cache.Copies(id)
	if err != nil {
		return err
	}
	for _, c := range copies {
		if checked[c.PackedBlob] || c.Type != t {
			continue
		}
		checked[c.PackedBlob] = true
		if _, err := br.loadCopy(ctx, t, c.PackedBlob, nil); err != nil {
			if transient(err) {
				return err
			}
			res.add("data/"+c.Pack.String(), "a claimed copy of chunk %s is not intact: %v", id.Short(), err)
		}
	}
	return nil
}

// checkData decrypts every claimed blob and frame of a share of the packs
// (all for share 1) and matches each claimed chunk to its ID. A claim that
// fails names its pack: a forged pack, or a damaged one.
func (r *Repo) checkData(ctx context.Context, res *CheckResult, trailers map[ID][]pack.Blob, share float64) error {
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	claims := map[ID][]pack.Blob{}
	if err := br.cache.forEachCopy(func(c blobCopy) error {
		claims[c.Pack] = append(claims[c.Pack], c.Blob)
		return nil
	}); err != nil {
		return err
	}
	for id, tr := range trailers {
		claims[id] = append(claims[id], tr...)
	}
	packs := make([]ID, 0, len(claims))
	for id := range claims {
		packs = append(packs, id)
	}
	slices.SortFunc(packs, compareID)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	packs = slices.DeleteFunc(packs, func(id ID) bool {
		_, stored := trailers[id] // a claim about a missing pack is reported
		return !stored || share < 1 && rng.Float64() >= share
	})
	var buf []byte
	for n, id := range packs {
		r.Report("read data", int64(n), int64(len(packs)))
		blobs := claims[id]
		slices.SortFunc(blobs, func(a, b pack.Blob) int { return int(a.Offset) - int(b.Offset) })
		bad := 0
		var first error
		for i, b := range blobs {
			if i > 0 && blobs[i-1] == b {
				continue
			}
			res.ReadBlobs++
			out, err := br.loadCopy(ctx, b.Type, pack.PackedBlob{Blob: b, Pack: id}, buf)
			if err != nil {
				if transient(err) {
					return err
				}
				bad++
				if first == nil {
					first = err
				}
				continue
			}
			buf = out
		}
		if bad > 0 {
			res.add("data/"+id.String(), "%d claimed chunks do not decrypt to their IDs (a forged or damaged pack; first: %v)", bad, first)
		}
	}
	r.Report("read data", int64(len(packs)), int64(len(packs)))
	return nil
}

// CheckKeyless verifies what needs no key, for every kind of object: the
// config is signed by the master key it names; key records and
// revocations are the master's, named by their key; the master key file
// is one; content-named objects hash to their names; packs start with a
// pack header; snapshots parse and are signed by a key the master
// certified; drill, forget and prune records are signed by the master;
// lock objects are locks. Anything else in a folder is reported too.
func CheckKeyless(ctx context.Context, be backend.Backend) (*CheckResult, error) {
	res := &CheckResult{Structural: true}
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		if errors.Is(err, ErrNoRepository) {
			return nil, err
		}
		res.add("config", "%v", err)
	}
	for _, t := range contentNamed {
		err := list(ctx, be, t, func(name string, size int64) error {
			res.Objects++
			res.Bytes += size
			return checkContentNamed(ctx, be, res, backend.Handle{Type: t, Name: name})
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg == nil {
		return res, nil
	}
	r := &Repo{be: be, cfg: cfg}
	kr, err := checkKeys(ctx, r, res)
	if err != nil {
		return nil, err
	}
	if err := checkSignedObjects(ctx, r, kr, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkContentNamed hashes an object and checks that packs start as packs.
func checkContentNamed(ctx context.Context, be backend.Backend, res *CheckResult, h backend.Handle) error {
	sum := sha256.New()
	var head [pack.HeaderSize]byte
	var n int
	err := be.Load(ctx, h, 0, 0, func(rc io.Reader) error {
		sum.Reset()
		n, _ = io.ReadFull(rc, head[:])
		sum.Write(head[:n])
		_, err := io.Copy(sum, rc)
		return err
	})
	if err != nil {
		if transient(err) {
			return err
		}
		res.add(h.String(), "%v", err)
		return nil
	}
	if hex.EncodeToString(sum.Sum(nil)) != h.Name {
		res.add(h.String(), "content does not match its name: bit rot or tampering")
	}
	if h.Type == backend.TypeData {
		if _, err := pack.ParseHeader(head[:n]); err != nil {
			res.add(h.String(), "%v", err)
		}
	}
	return nil
}

// checkKeys checks every object in keys/.
func checkKeys(ctx context.Context, r *Repo, res *CheckResult) (*keyring, error) {
	kr, err := r.keyring(ctx)
	if err != nil {
		return nil, err
	}
	err = list(ctx, r.be, backend.TypeKey, func(name string, size int64) error {
		res.Objects++
		res.Bytes += size
		stem, ext, _ := strings.Cut(name, ".")
		id, perr := crypto.ParseKeyID(stem)
		switch {
		case perr != nil:
			res.add("keys/"+name, "not a key object (its name is not a key ID)")
		case ext == "cert" && kr.recs[id] == nil, ext == "revoked" && kr.revoked[id] == nil:
			// keyring warned about it.
		case ext == "key" || ext == "key-new":
			b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeKey, Name: name}, 1<<20)
			if err != nil {
				if transient(err) {
					return err
				}
				res.add("keys/"+name, "%v", err)
				return nil
			}
			hdr, err := crypto.ParseKeyFileHeader(b)
			if err != nil || hdr.Role != crypto.RoleMaster || hdr.ID != r.cfg.master.ID {
				res.add("keys/"+name, "not the master key file of this repository")
			}
		case ext != "cert" && ext != "revoked":
			res.add("keys/"+name, "not a key object")
		}
		return nil
	})
	res.Problems = append(res.Problems, r.Warnings()...)
	return kr, err
}

// checkSignedObjects checks the signatures of snapshots, records and
// locks.
func checkSignedObjects(ctx context.Context, r *Repo, kr *keyring, res *CheckResult) error {
	if err := r.be.List(ctx, backend.TypeSnapshot, func(fi backend.FileInfo) error {
		if _, err := r.loadSnapshot(ctx, fi, kr, false); err != nil {
			if transient(err) {
				return err
			}
			res.add("snapshots/"+fi.Name, "%v", err)
		}
		return nil
	}); err != nil {
		return err
	}
	records := []struct {
		t   backend.Type
		ctx crypto.SigContext
		max int64
	}{{backend.TypeDrill, drillContext, maxDrill}, {backend.TypeForget, forgetContext, maxForget},
		{backend.TypePrune, pruneContext, maxPruneMark}, {backend.TypeTimes, timesContext, maxTimes}}
	for _, rec := range records {
		if err := list(ctx, r.be, rec.t, func(name string, _ int64) error {
			h := backend.Handle{Type: rec.t, Name: name}
			b, err := loadAll(ctx, r.be, h, rec.max)
			if err != nil {
				if transient(err) {
					return err
				}
				res.add(h.String(), "%v", err)
				return nil
			}
			var body map[string]any
			if err := r.openRecord(rec.ctx, b, &body); err != nil {
				res.add(h.String(), "not a record the master signed: %v", err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return r.checkLockObjects(ctx, kr, res)
}
