//go:build !race

package repo

// raceEnabled: the race detector slows crypto and zstd down several
// times; long tests shrink their default run under it.
const raceEnabled = false
