//go:build !linux

package backend

// renameat2NoReplace: other systems use the checked rename.
func renameat2NoReplace(from, to string) error { return errNoRenameat2 }
