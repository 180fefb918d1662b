// Package pack is the repository's object format below the repository:
// the IDs that name chunks and objects, pack files (a header, sealed blobs
// and frames, and a trailer of entries sealed with the index key), the
// entries in their long and short forms, and the blob codec (flag byte,
// zstd, PADME padding, the session's AEAD) with version 3's frame headers.
//
// It knows nothing of snapshots, index files, the cache or keys' roles:
// package repo decides what to seal with which key and whom to trust.
// docs/FORMAT.md ("Packs", "Frames") is the specification; values written
// here are stored and never reused.
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package pack
