package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"
)

// Index files (docs/FORMAT.md, "Index file") are sealed with the index key
// (object type 'I', no ID):
//
//	v1: "LRDIDX1\n" | npacks uvarint | (pack ID 32 | nblobs uvarint | long entry*)*
//	    | nsuperseded uvarint | index file ID 32 *
//	v2: "LRDIDX2\n" | flags uvarint | the same, with short entries unless
//	    flags has indexLongEntries | [signature 64 if flags has indexVerified]
//
// A writer's index file is a claim: any holder of the index key (every
// writer) could have written it. A verified index file (flag
// indexVerified) is the master's: every entry in it names a copy the
// master decrypted and matched to its chunk ID, signed with the master's
// key (context "larder index v1") over every byte before the signature.
// Writers deduplicate only against verified entries and their own packs;
// prune trusts only verified entries.
const (
	indexMagic  = "LRDIDX1\n"
	indexMagic2 = "LRDIDX2\n"
	// MaxIndexFile bounds an index file.
	MaxIndexFile = 256 << 20
	// maxPacksPerIndex and maxBlobsPerIndex are how many packs, or
	// blobs in them, one index file lists before a writer starts another:
	// a writer keeps the entries of its packs until they are in an index
	// file, so these bound its memory whatever the backup's size.
	maxPacksPerIndex = 64
	maxBlobsPerIndex = 1 << 16

	indexVerified    = 1 << 0
	indexLongEntries = 1 << 1
	indexFlagsKnown  = indexVerified | indexLongEntries

	indexContext = crypto.SigContext("larder index v1")

	// objIndex is the AEAD object type of index files (docs/FORMAT.md;
	// never reused).
	objIndex = 'I'
)

// IndexFile lists packs and their blobs.
type IndexFile struct {
	Packs      []IndexedPack
	Supersedes []ID // index files this one replaces (written by prune)
	// Verified: written and signed by the master, every entry checked.
	Verified bool
	// Entries is the encoding of the entries.
	Entries pack.EntryFormat
}

// IndexedPack is a pack and its blobs.
type IndexedPack struct {
	ID    ID
	Blobs []pack.Blob
}

// errIndexSignature: an index file says it is verified, and its signature
// is not the master's.
var errIndexSignature = errors.New("says it was verified by the master, but the master did not sign it")

// marshal encodes an index file; a verified one is signed with sign.
func (f *IndexFile) marshal(sign func([]byte) ([]byte, error)) ([]byte, error) {
	var b []byte
	if f.Entries == pack.EntriesLong && !f.Verified {
		b = []byte(indexMagic)
	} else {
		b = []byte(indexMagic2)
		var flags uint64
		if f.Verified {
			flags |= indexVerified
		}
		if f.Entries == pack.EntriesLong {
			flags |= indexLongEntries
		}
		b = binary.AppendUvarint(b, flags)
	}
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.Blobs)))
		for _, bl := range p.Blobs {
			b = pack.AppendEntry(b, bl, f.Entries)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.Supersedes)))
	for _, id := range f.Supersedes {
		b = append(b, id[:]...)
	}
	if f.Verified {
		if sign == nil {
			return nil, errors.New("repo: a verified index file needs the master's signature")
		}
		sig, err := sign(b)
		if err != nil {
			return nil, err
		}
		b = append(b, sig...)
	}
	return b, nil
}

func (f *IndexFile) seal(indexKey *[32]byte, sign func([]byte) ([]byte, error)) ([]byte, error) {
	b, err := f.marshal(sign)
	if err != nil {
		return nil, err
	}
	return crypto.Seal(nil, indexKey, objIndex, nil, b), nil
}

// openIndexFile opens an index file; a verified one must carry the
// signature of masterSign.
func openIndexFile(sealed []byte, indexKey *[32]byte, masterSign ed25519.PublicKey) (*IndexFile, error) {
	plain, err := crypto.Open(nil, indexKey, objIndex, nil, sealed)
	if err != nil {
		return nil, err
	}
	return parseIndexFile(plain, masterSign)
}

func parseIndexFile(plain []byte, masterSign ed25519.PublicKey) (*IndexFile, error) {
	f := &IndexFile{Entries: pack.EntriesLong}
	var body []byte
	switch {
	case bytes.HasPrefix(plain, []byte(indexMagic)):
		body = plain[len(indexMagic):]
	case bytes.HasPrefix(plain, []byte(indexMagic2)):
		body = plain[len(indexMagic2):]
		flags, n := binary.Uvarint(body)
		if n <= 0 || flags&^indexFlagsKnown != 0 {
			return nil, fmt.Errorf("unknown index flags")
		}
		body = body[n:]
		if flags&indexLongEntries == 0 {
			f.Entries = pack.EntriesShort
		}
		if flags&indexVerified != 0 {
			if len(body) < ed25519.SignatureSize {
				return nil, errIndexSignature
			}
			signed, sig := plain[:len(plain)-ed25519.SignatureSize], plain[len(plain)-ed25519.SignatureSize:]
			if crypto.Verify(masterSign, indexContext, signed, sig) != nil {
				return nil, errIndexSignature
			}
			body = body[:len(body)-ed25519.SignatureSize]
			f.Verified = true
		}
	default:
		return nil, fmt.Errorf("not a larder index file")
	}
	r := bytes.NewReader(body)
	// count reads a count of entries of at least min bytes each.
	count := func(min int) (int, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, err
		}
		if v > uint64(r.Len()/min) {
			return 0, fmt.Errorf("count %d is over what the file holds", v)
		}
		return int(v), nil
	}
	np, err := count(32 + 1) // pack ID, blob count
	if err != nil {
		return nil, err
	}
	for i := 0; i < np; i++ {
		var p IndexedPack
		if _, err := io.ReadFull(r, p.ID[:]); err != nil {
			return nil, err
		}
		nb, err := count(pack.MinEntry)
		if err != nil {
			return nil, err
		}
		p.Blobs = make([]pack.Blob, 0, nb)
		for j := 0; j < nb; j++ {
			bl, err := pack.ReadEntry(r, f.Entries)
			if err != nil {
				return nil, err
			}
			p.Blobs = append(p.Blobs, bl)
		}
		f.Packs = append(f.Packs, p)
	}
	ns, err := count(32)
	if err != nil {
		return nil, err
	}
	for i := 0; i < ns; i++ {
		var id ID
		if _, err := io.ReadFull(r, id[:]); err != nil {
			return nil, err
		}
		f.Supersedes = append(f.Supersedes, id)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", r.Len())
	}
	return f, nil
}

// loadIndexFile reads, checks and opens an index file.
func loadIndexFile(ctx context.Context, be backend.Backend, name string, indexKey *[32]byte, masterSign ed25519.PublicKey) (*IndexFile, error) {
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeIndex, Name: name}, MaxIndexFile)
	if err != nil {
		return nil, err
	}
	if !verifyContentName(name, b) {
		return nil, fmt.Errorf("index/%s: %w: content does not match its name (bit rot or tampering)", name, ErrCorrupt)
	}
	f, err := openIndexFile(b, indexKey, masterSign)
	if err != nil {
		return nil, fmt.Errorf("index/%s: %w: %w", name, ErrCorrupt, err)
	}
	return f, nil
}
