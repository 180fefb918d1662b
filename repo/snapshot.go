package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/larder/larder/repo/backend"

	"github.com/larder/larder/crypto"
)

// A snapshot is stored as an envelope (docs/FORMAT.md, "Snapshot"):
//
//	v1 "LRDSNAP1" | writer key ID 16 | seq uvarint | prev 32 | claimed
//	   time int64 (Unix ns) | original tag 32 | body length uvarint |
//	   sealed body | Ed25519 signature 64 (context "larder manifest v1")
//	   over all before
//	v2 "LRDSNAP2" | writer's certificate (length uvarint, bytes) | the
//	   same from seq on (repository version 3)
//
// The envelope is plaintext so that every key can list snapshots, follow
// each writer's chain and find the originals already stored; the body,
// sealed to the master and the auditors, holds the rest (Manifest). A v2
// envelope carries its writer's certificate: it verifies with nothing but
// the master's public key (in the config), whatever became of keys/.
const (
	snapMagic  = "LRDSNAP1"
	snapMagic2 = "LRDSNAP2"
	// MaxSnapshot bounds a stored snapshot.
	MaxSnapshot = 64 << 20
	// MaxSeq bounds a snapshot's sequence number (a snapshot a minute
	// for 8000 years): a larger one is damaged or forged, and never sizes
	// anything.
	MaxSeq = 1 << 32
)

// Envelope is the plaintext part of a snapshot.
type Envelope struct {
	Writer   crypto.KeyID
	Cert     []byte // v2: the writer's certificate (a key record)
	Seq      uint64 // 1 for a writer's first snapshot
	Prev     ID     // the writer's previous snapshot, zero for the first
	Claimed  time.Time
	Original ID // keyed hash of the original's SHA-256
	Body     []byte
	Sig      []byte

	signed []byte // the bytes the signature covers
}

func (e *Envelope) marshalSigned() []byte {
	var b []byte
	if e.Cert != nil {
		b = []byte(snapMagic2)
		b = binary.AppendUvarint(b, uint64(len(e.Cert)))
		b = append(b, e.Cert...)
	} else {
		b = []byte(snapMagic)
		b = append(b, e.Writer[:]...)
	}
	b = binary.AppendUvarint(b, e.Seq)
	b = append(b, e.Prev[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Claimed.UnixNano()))
	b = append(b, e.Original[:]...)
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	b = append(b, e.Body...)
	return b
}

func parseEnvelope(b []byte) (*Envelope, error) {
	e := &Envelope{}
	var r *bytes.Reader
	switch {
	case bytes.HasPrefix(b, []byte(snapMagic)):
		r = bytes.NewReader(b[len(snapMagic):])
		if _, err := io.ReadFull(r, e.Writer[:]); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(b, []byte(snapMagic2)):
		r = bytes.NewReader(b[len(snapMagic2):])
		n, err := binary.ReadUvarint(r)
		if err != nil || n > crypto.MaxCertificateSize || n > uint64(r.Len()) {
			return nil, errors.New("bad certificate length")
		}
		e.Cert = make([]byte, n)
		_, _ = io.ReadFull(r, e.Cert) // n <= r.Len(): a bytes.Reader gives it all
		rec, err := crypto.ParseKeyRecord(e.Cert)
		if err != nil {
			return nil, fmt.Errorf("writer's certificate: %w", err)
		}
		e.Writer = rec.ID
	default:
		return nil, errors.New("not a larder snapshot")
	}
	var err error
	if e.Seq, err = binary.ReadUvarint(r); err != nil {
		return nil, err
	}
	if e.Seq == 0 || e.Seq > MaxSeq {
		return nil, fmt.Errorf("sequence number %d is out of range", e.Seq)
	}
	if _, err := io.ReadFull(r, e.Prev[:]); err != nil {
		return nil, err
	}
	var t [8]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return nil, err
	}
	e.Claimed = time.Unix(0, int64(binary.LittleEndian.Uint64(t[:]))).UTC()
	if _, err := io.ReadFull(r, e.Original[:]); err != nil {
		return nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) {
		return nil, errors.New("bad body length")
	}
	e.Body = make([]byte, n)
	_, _ = io.ReadFull(r, e.Body) // n <= r.Len()
	if r.Len() != ed25519.SignatureSize {
		return nil, fmt.Errorf("signature of %d bytes", r.Len())
	}
	e.Sig = make([]byte, ed25519.SignatureSize)
	_, _ = io.ReadFull(r, e.Sig) // r.Len() is the signature's size
	e.signed = b[:len(b)-ed25519.SignatureSize]
	return e, nil
}

// loadEnvelope reads a snapshot and checks that its bytes match its name.
// Its errors are ErrCorrupt unless the storage failed.
func loadEnvelope(ctx context.Context, be backend.Backend, name string) (*Envelope, error) {
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeSnapshot, Name: name}, MaxSnapshot)
	if err != nil {
		return nil, err
	}
	if !verifyContentName(name, b) {
		return nil, fmt.Errorf("snapshots/%s: %w: content does not match its name (bit rot or tampering)", name, ErrCorrupt)
	}
	e, err := parseEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("snapshots/%s: %w: %w", name, ErrCorrupt, err)
	}
	return e, nil
}

// ErrRejected: the repository rejects the snapshot (its key was revoked
// before it was made); restore and drill refuse it unless asked to.
var ErrRejected = errors.New("the repository rejects this snapshot")

// Usable reports ErrRejected for a rejected snapshot no caller allowed.
func (s *Snapshot) Usable() error {
	if s.Rejected != "" && !s.AllowRejected {
		return fmt.Errorf("snapshot %s: %w: %s (--allow-rejected restores it anyway)", s.ID.Short(), ErrRejected, s.Rejected)
	}
	return nil
}

// Manifest is the sealed body of a snapshot.
type Manifest struct {
	Name     string    `json:"name"`
	Size     uint64    `json:"size"`
	SHA256   string    `json:"sha256"`
	ModTime  time.Time `json:"mtime"`
	Ingested time.Time `json:"ingested"`
	Host     string    `json:"host,omitempty"`
	// Site, BackupTime and Tags (added in repository version 3 without a
	// version change: older manifests lack them, and readers then use
	// ModTime and the writer key): the forum the backup belongs to, when it was
	// made (from its name, else ModTime), and the writer's tags. All three
	// are the writer's claims: see Plan for how retention uses them.
	Site       string          `json:"site,omitempty"`
	BackupTime time.Time       `json:"backup_time,omitzero"`
	Tags       []string        `json:"tags,omitempty"`
	Recipe     []byte          `json:"recipe"`
	Streams    []StreamRef     `json:"streams"`
	Summary    json.RawMessage `json:"summary,omitempty"`
	Damaged    []string        `json:"damaged,omitempty"` // warnings about the original
	Stats      IngestStats     `json:"stats"`
}

// StreamRef is a canonical stream: its chunk list's tree root.
type StreamRef struct {
	Kind  uint8  `json:"kind"`
	Len   uint64 `json:"len"`
	Depth uint8  `json:"depth"` // 0: empty stream
	Root  ID     `json:"root"`
}

// IngestStats says what a snapshot cost.
type IngestStats struct {
	Chunks     uint64 `json:"chunks"`      // chunks referenced
	NewChunks  uint64 `json:"new_chunks"`  // of which stored by this ingest
	NewRaw     uint64 `json:"new_raw"`     // their bytes before compression
	NewStored  uint64 `json:"new_stored"`  // bytes added to packs (sealed)
	DedupBytes uint64 `json:"dedup_bytes"` // canonical bytes found already stored
}

// Snapshot is a listed snapshot: its name (the object's ID), envelope,
// and, when a key could open it, its manifest.
type Snapshot struct {
	ID       ID
	Envelope *Envelope // without its body (Body nil) once listed
	Manifest *Manifest // nil unless opened
	Stored   time.Time // the storage's time for the object, if known
	// Rejected says why the repository does not accept the snapshot
	// (its key was revoked before it, or it is off the chain the
	// revocation accepts); "" for an accepted one. Restore, drill and
	// forget pass rejected snapshots by; audit reports them.
	Rejected string
	// ByRevokedKey: accepted, from a key revoked later.
	ByRevokedKey bool
	// AllowRejected is set by a caller that restores or drills a rejected
	// snapshot on purpose (restore --allow-rejected).
	AllowRejected bool
	// FirstSeen is when this machine's master first listed it (zero:
	// not known).
	FirstSeen time.Time
}
