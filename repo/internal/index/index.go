// Package index is the format of index files: lists of packs and their
// blob entries, sealed with the index key, and (verified ones) signed by
// the master. What to believe of them is package repo's business.
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package index

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/internal/pack"
)

// Index files (docs/FORMAT.md, "Index file") are sealed with the index key
// (object type 'I', no associated ID):
//
//	v1: "LRDIDX1\n" | npacks uvarint | (pack ID 32 | nblobs uvarint | long entry*)*
//	    | nsuperseded uvarint | index file ID 32 *
//	v2: "LRDIDX2\n" | flags uvarint | the same, with short entries unless
//	    flags has FlagLongEntries | [signature 64 if flags has FlagVerified]
//
// A writer's index file is a claim: any holder of the index key (every
// writer) could have written it. A verified index file (flag
// FlagVerified) is the master's: every entry in it names a copy the
// master decrypted and matched to its chunk ID, signed with the master's
// key (context "larder index v1") over every byte before the signature.
// Writers deduplicate only against verified entries and their own packs;
// prune trusts only verified entries.
const (
	// Magic1 and Magic2 start index files of format 1 and 2.
	Magic1 = "LRDIDX1\n"
	Magic2 = "LRDIDX2\n"
	// FlagVerified and FlagLongEntries are format 2's flags.
	FlagVerified    = 1 << 0
	FlagLongEntries = 1 << 1
	flagsKnown      = FlagVerified | FlagLongEntries

	// Context is the signature context of verified index files.
	Context = crypto.SigContext("larder index v1")

	// ObjType is the AEAD object type of index files (docs/FORMAT.md;
	// never reused).
	ObjType = 'I'
)

// File lists packs and their blobs.
type File struct {
	Packs      []Pack
	Supersedes []pack.ID // index files this one replaces (written by prune)
	// Verified: written and signed by the master, every entry checked.
	Verified bool
	// Entries is the encoding of the entries.
	Entries pack.EntryFormat
}

// Pack is a pack and its blobs.
type Pack struct {
	ID    pack.ID
	Blobs []pack.Blob
}

// ErrUnsigned: an index file says it is verified, and its signature
// is not the master's.
var ErrUnsigned = errors.New("says it was verified by the master, but the master did not sign it")

// Marshal encodes an index file; a verified one is signed with sign.
func (f *File) Marshal(sign func([]byte) ([]byte, error)) ([]byte, error) {
	var b []byte
	if f.Entries == pack.EntriesLong && !f.Verified {
		b = []byte(Magic1)
	} else {
		b = []byte(Magic2)
		var flags uint64
		if f.Verified {
			flags |= FlagVerified
		}
		if f.Entries == pack.EntriesLong {
			flags |= FlagLongEntries
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

// Seal marshals and seals an index file with the index key.
func (f *File) Seal(indexKey *[32]byte, sign func([]byte) ([]byte, error)) ([]byte, error) {
	b, err := f.Marshal(sign)
	if err != nil {
		return nil, err
	}
	return crypto.Seal(nil, indexKey, ObjType, nil, b), nil
}

// Open opens an index file; a verified one must carry the
// signature of masterSign.
func Open(sealed []byte, indexKey *[32]byte, masterSign ed25519.PublicKey) (*File, error) {
	plain, err := crypto.Open(nil, indexKey, ObjType, nil, sealed)
	if err != nil {
		return nil, err
	}
	return Parse(plain, masterSign)
}

// Parse decodes an opened index file; a verified one must carry the
// signature of masterSign.
func Parse(plain []byte, masterSign ed25519.PublicKey) (*File, error) {
	f := &File{Entries: pack.EntriesLong}
	var body []byte
	switch {
	case bytes.HasPrefix(plain, []byte(Magic1)):
		body = plain[len(Magic1):]
	case bytes.HasPrefix(plain, []byte(Magic2)):
		body = plain[len(Magic2):]
		flags, n := binary.Uvarint(body)
		if n <= 0 || flags&^flagsKnown != 0 {
			return nil, fmt.Errorf("unknown index flags")
		}
		body = body[n:]
		if flags&FlagLongEntries == 0 {
			f.Entries = pack.EntriesShort
		}
		if flags&FlagVerified != 0 {
			if len(body) < ed25519.SignatureSize {
				return nil, ErrUnsigned
			}
			signed, sig := plain[:len(plain)-ed25519.SignatureSize], plain[len(plain)-ed25519.SignatureSize:]
			if crypto.Verify(masterSign, Context, signed, sig) != nil {
				return nil, ErrUnsigned
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
		var p Pack
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
		var id pack.ID
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
