package crypto

import "crypto/ed25519"

// What each key is, for the repository (package repo's Key and the
// capability interfaces beside it): its ID and role, the index key, and the
// master's public signing key every key carries. The methods are small so
// that a user of a key asks for a capability, not for a type.

// KeyID is the key's ID.
func (k *MasterKey) KeyID() KeyID { return k.ID }

// KeyID is the key's ID.
func (k *WriteKey) KeyID() KeyID { return k.ID }

// KeyID is the key's ID.
func (k *AuditKey) KeyID() KeyID { return k.ID }

// Role is RoleMaster.
func (k *MasterKey) Role() Role { return RoleMaster }

// Role is RoleWrite.
func (k *WriteKey) Role() Role { return RoleWrite }

// Role is RoleAudit.
func (k *AuditKey) Role() Role { return RoleAudit }

// IndexSecret is the key that seals the index.
func (k *MasterKey) IndexSecret() *[KeySize]byte { return &k.IndexKey }

// IndexSecret is the key that seals the index.
func (k *WriteKey) IndexSecret() *[KeySize]byte { return &k.IndexKey }

// IndexSecret is the key that seals the index.
func (k *AuditKey) IndexSecret() *[KeySize]byte { return &k.IndexKey }

// MasterSigningKey is the master's public signing key.
func (k *MasterKey) MasterSigningKey() ed25519.PublicKey { return k.SignPublic() }

// MasterSigningKey is the master's public signing key.
func (k *WriteKey) MasterSigningKey() ed25519.PublicKey { return k.MasterSignPub }

// MasterSigningKey is the master's public signing key.
func (k *AuditKey) MasterSigningKey() ed25519.PublicKey { return k.MasterSignPub }

// Chunking is the chunker polynomial and the chunk-ID key (keys that
// store chunks: master and write).
func (k *MasterKey) Chunking() (uint64, *[KeySize]byte) { return k.ChunkerPoly, &k.ChunkIDKey }

// Chunking is the chunker polynomial and the chunk-ID key.
func (k *WriteKey) Chunking() (uint64, *[KeySize]byte) { return k.ChunkerPoly, &k.ChunkIDKey }

// Recipients are the public box keys of the master and the auditors, to
// which sessions derive their keys and manifests are sealed (keys that
// write: master and write).
func (k *MasterKey) Recipients() (master, audit [32]byte) {
	return k.BoxKey.Public, k.AuditBoxKey.Public
}

// Recipients are the public box keys of the master and the auditors.
func (k *WriteKey) Recipients() (master, audit [32]byte) { return k.MasterBoxPub, k.AuditBoxPub }
