package backend

// WithoutRenameat2 makes Local use the checked rename of file systems
// that lack RENAME_NOREPLACE (FUSE bucket mounts, SMB) until undo.
func WithoutRenameat2() (undo func()) {
	old := renameat2
	renameat2 = func(string, string) error { return errNoRenameat2 }
	return func() { renameat2 = old }
}
