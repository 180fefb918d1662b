package crypto_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/larder/larder/crypto"
)

// Example shows the life of a backup: the master makes a write key for the
// forum server; the server seals a chunk in a session and a manifest to
// the master and auditors; afterwards only the key holders can read them.
func Example() {
	// Offline, once. The polynomial comes from chunker.RandomPolynomial.
	master, err := crypto.NewMasterKey(nil, 0x3DA3358B4DC173)
	if err != nil {
		log.Fatal(err)
	}
	writer, err := master.NewWriteKey("forum.example.org", time.Now())
	if err != nil {
		log.Fatal(err)
	}
	file, err := writer.MarshalKeyFile(nil, nil) // no passphrase: for cron
	if err != nil {
		log.Fatal(err)
	}

	// On the forum server, every night.
	kf, err := crypto.ParseKeyFile(file, nil)
	if err != nil {
		log.Fatal(err)
	}
	w := kf.Write
	session, err := w.NewSession(nil)
	if err != nil {
		log.Fatal(err)
	}
	chunk := []byte("INSERT INTO posts VALUES (1, 'hello');\n")
	id := crypto.ChunkID(&w.ChunkIDKey, chunk)
	sealed, err := session.SealData(nil, 1, id[:], crypto.Pad(nil, chunk))
	if err != nil {
		log.Fatal(err)
	}
	ephemeral := session.EphemeralPublic() // stored in the pack header
	session.Erase()

	manifest, err := crypto.SealTo(nil, []byte("snapshot 1"), []byte("manifest"), w.MasterBoxPub, w.AuditBoxPub)
	if err != nil {
		log.Fatal(err)
	}
	sig, err := w.Sign(crypto.ContextManifest, manifest)
	if err != nil {
		log.Fatal(err)
	}

	// Restore, with the master key.
	if err := w.Record().Verify(master.SignPublic()); err != nil {
		log.Fatal(err)
	}
	if err := crypto.Verify(w.Record().SignPub, crypto.ContextManifest, manifest, sig); err != nil {
		log.Fatal(err)
	}
	m, err := master.OpenSealed(manifest, []byte("manifest"))
	if err != nil {
		log.Fatal(err)
	}
	keys, err := master.OpenSession(ephemeral)
	if err != nil {
		log.Fatal(err)
	}
	padded, err := keys.OpenData(nil, 1, id[:], sealed)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := crypto.Unpad(padded)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s / %s", m, plain)
	// Output: snapshot 1 / INSERT INTO posts VALUES (1, 'hello');
}

// ExampleCheckKeyFileMode shows the warning for a key file others can read.
func ExampleCheckKeyFileMode() {
	err := crypto.CheckKeyFileMode("/etc/larder/write.key")
	var warn *crypto.KeyFileModeError
	switch {
	case err == nil:
	case errors.As(err, &warn):
		log.Printf("warning: %v", warn)
	default:
		log.Printf("cannot check the key file: %v", err)
	}
}
