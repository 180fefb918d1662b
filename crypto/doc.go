// Package crypto holds larder's key hierarchy and every cryptographic
// primitive the repository uses: key files, ingest-session sealing,
// sealing to recipients, object encryption, signatures, padding and chunk
// IDs. It imports nothing else from larder. Byte layouts are specified in
// docs/format/keys.md; golden files under testdata/golden pin them.
//
// # Keys and roles
//
// A [MasterKey] holds everything: its own X25519 box key pair, the
// auditors' box key pair, an Ed25519 signing key, the chunker polynomial,
// the chunk-ID key and the index key. It makes the other keys:
//
//   - a [WriteKey] ([MasterKey.NewWriteKey]) lives on the forum server. It
//     holds the chunker polynomial, the chunk-ID key and the index key (so
//     it can chunk and deduplicate like every other writer), the master's
//     and auditors' public box keys, the master's public signing key and
//     its own signing key with a [Certificate] from the master. It holds
//     no private box key, so it cannot open any chunk or manifest,
//     including those it wrote.
//   - an [AuditKey] ([MasterKey.NewAuditKey]) holds the auditors' box key
//     pair, the index key and public keys: it opens manifests and
//     metadata and verifies signatures, but cannot derive the key that
//     seals chunk contents.
//
// Every key has a random 16-byte [KeyID] and a [KeyRecord], its public
// part (the certificate), which a repository stores in plaintext. The
// master revokes a key with a signed [Revocation].
//
// # Key files
//
// [MasterKey.MarshalKeyFile] and its siblings write one key into a
// versioned binary file sealed with XChaCha20-Poly1305 under a key
// derived from a passphrase with argon2id; the parameters are calibrated
// on the machine that makes the file ([CalibrateKDF]) and stored in it.
// Write keys may be stored without a passphrase, for cron; the header says
// so ([KeyFileHeader.Protected]) and callers must warn. [ParseKeyFile]
// reads any of them, [WriteKeyFile] writes one with mode 0600 and
// [CheckKeyFileMode] warns when a file's mode is wider. Tests call
// [TestOnlyFastKDF].
//
// # Sessions
//
// Each ingest run makes a [Session] ([NewSession], [WriteKey.NewSession])
// with a fresh ephemeral X25519 key. A data key is derived (HKDF-SHA256)
// from the ephemeral key and the master's box key, a meta key from the
// ephemeral key and the auditors' box key. The ephemeral secret is zeroed
// as soon as both are derived and [Session.Erase] zeroes the keys, so a
// stolen write key opens nothing already stored. The master re-derives
// both keys from the stored ephemeral public key ([MasterKey.OpenSession]),
// an auditor only the meta key ([AuditKey.OpenSession]).
//
// # Objects
//
// [Seal] and [Open] encrypt one object with XChaCha20-Poly1305, a random
// 24-byte nonce prepended, the object's type byte and ID bound as
// associated data ([RandomNonceAEAD] is the same as a cipher.AEAD). Open
// authenticates everything before releasing any plaintext and fails with
// the single opaque [ErrAuthFailed].
//
// [SealTo] seals a small object (a manifest) to several X25519 public keys
// (master and auditors), in the manner of age's X25519 recipients;
// [OpenSealed] opens it with one private key. The sender cannot reopen it.
//
// # Signatures
//
// [Sign] and [Verify] are Ed25519 over a [SigContext] naming the object
// kind, so a signature on one kind never verifies as another.
//
// # Padding and chunk IDs
//
// Blobs are padded with [Pad] to [PadmeLen] sizes before sealing, so
// stored sizes leak little about chunk lengths (which would leak the
// chunker's secret polynomial). [ChunkID] names a chunk by HMAC-SHA256
// of its plaintext under the chunk-ID key.
//
// # Erasing secrets
//
// Keys, sessions and session keys have Erase methods that zero their
// secret arrays; after Erase their methods fail with [ErrErased]. Go may
// have copied secrets elsewhere (cipher objects keep their own copy of the
// key, goroutine stacks are copied when they grow, freed memory is not
// zeroed), so erasure narrows the window in which a memory dump reveals a
// key; it does not close it.
//
// # Errors
//
// Errors wrap exported sentinels ([ErrAuthFailed], [ErrWrongPassphrase],
// [ErrMalformed], ...) with "crypto: <context>:" in front; test them with
// errors.Is. [Open] returns [ErrAuthFailed] bare.
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package crypto
