package backend

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameat2NoReplace renames with RENAME_NOREPLACE; errNoRenameat2 when the
// kernel or the file system (many FUSE and network ones) lacks it.
func renameat2NoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrExist}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return errNoRenameat2
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}
