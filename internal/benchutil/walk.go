package benchutil

import (
	"io/fs"
	"path/filepath"
)

func filepathWalk(dir string, fn func(int64)) {
	// The callback skips what it cannot read and never fails, so WalkDir
	// returns nil: there is no error to check.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				fn(fi.Size())
			}
		}
		return nil
	})
}
