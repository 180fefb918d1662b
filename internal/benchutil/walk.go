package benchutil

import (
	"io/fs"
	"path/filepath"
)

func filepathWalk(dir string, fn func(int64)) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				fn(fi.Size())
			}
		}
		return nil
	})
}
