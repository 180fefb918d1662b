package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"io"

	"github.com/larder/larder/crypto"
)

// Index file format v1 (docs/FORMAT.md, "Index file"), sealed with the
// index key (object type 'I', no ID):
//
//	"LRDIDX1\n" | npacks uvarint | (pack ID 32 | nblobs uvarint | blob*)*
//	| nsuperseded uvarint | index file ID 32 *
const (
	indexMagic = "LRDIDX1\n"
	// MaxIndexFile bounds an index file.
	MaxIndexFile = 256 << 20
	// maxPacksPerIndex and maxBlobsPerIndex are how many packs, or
	// blobs in them, one index file lists before a writer starts another:
	// a writer keeps the entries of its packs until they are in an index
	// file, so these bound its memory whatever the backup's size.
	maxPacksPerIndex = 64
	maxBlobsPerIndex = 1 << 16
)

// IndexFile lists packs and their blobs.
type IndexFile struct {
	Packs      []IndexedPack
	Supersedes []ID // index files this one replaces (written by prune)
}

// IndexedPack is a pack and its blobs.
type IndexedPack struct {
	ID    ID
	Blobs []Blob
}

func (f *IndexFile) seal(indexKey *[32]byte) []byte {
	b := []byte(indexMagic)
	b = binary.AppendUvarint(b, uint64(len(f.Packs)))
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.Blobs)))
		for _, bl := range p.Blobs {
			b = appendBlob(b, bl)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(f.Supersedes)))
	for _, id := range f.Supersedes {
		b = append(b, id[:]...)
	}
	return crypto.Seal(nil, indexKey, objIndex, nil, b)
}

func openIndexFile(sealed []byte, indexKey *[32]byte) (*IndexFile, error) {
	plain, err := crypto.Open(nil, indexKey, objIndex, nil, sealed)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(plain, []byte(indexMagic)) {
		return nil, fmt.Errorf("not a larder index file")
	}
	r := bytes.NewReader(plain[len(indexMagic):])
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
	f := &IndexFile{}
	np, err := count(32 + 1) // pack ID, blob count
	if err != nil {
		return nil, err
	}
	for i := 0; i < np; i++ {
		var p IndexedPack
		if _, err := io.ReadFull(r, p.ID[:]); err != nil {
			return nil, err
		}
		nb, err := count(minBlobEntry)
		if err != nil {
			return nil, err
		}
		p.Blobs = make([]Blob, 0, nb)
		for j := 0; j < nb; j++ {
			bl, err := readBlob(r)
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
func loadIndexFile(ctx context.Context, be backend.Backend, name string, indexKey *[32]byte) (*IndexFile, error) {
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeIndex, Name: name}, MaxIndexFile)
	if err != nil {
		return nil, err
	}
	if !verifyContentName(name, b) {
		return nil, fmt.Errorf("index/%s: content does not match its name (bit rot or tampering)", name)
	}
	f, err := openIndexFile(b, indexKey)
	if err != nil {
		return nil, fmt.Errorf("index/%s: %w", name, err)
	}
	return f, nil
}
