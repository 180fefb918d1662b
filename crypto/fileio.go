package crypto

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// KeyFileMode is the permission a key file is written with.
const KeyFileMode = 0o600

// WriteKeyFile writes data (a key file) to path with mode 0600, atomically:
// a temporary file in the same directory is written, synced and renamed
// over path, and the directory is synced. An existing file at path is
// replaced; deciding whether that is wanted is the caller's business.
func WriteKeyFile(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("crypto: write key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			// The error to report is the one above; the partial file goes.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; say so explicitly in case that changes.
	if err := f.Chmod(KeyFileMode); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("crypto: write key file %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("crypto: write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("crypto: write key file %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("crypto: write key file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("crypto: write key file %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Not possible on Windows, where
// directories cannot be opened for syncing; there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("crypto: sync directory %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // opened to sync it, never written
	if err := d.Sync(); err != nil {
		return fmt.Errorf("crypto: sync directory %s: %w", dir, err)
	}
	return nil
}

// CheckKeyFileMode returns a [*KeyFileModeError] (a warning: the key is
// still usable) when the key file at path can be read or written by the
// group or others, nil when its mode is 0600 or narrower, and an ordinary
// error if path cannot be examined or is not a regular file. On Windows,
// where permission bits mean little, it only checks that the file exists.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("crypto: key file mode: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("crypto: key file mode: %s is not a regular file", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &KeyFileModeError{Path: path, Mode: fi.Mode().Perm()}
	}
	return nil
}
