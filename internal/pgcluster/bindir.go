package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// requiredPrograms must all be in a bin folder for it to be usable.
var requiredPrograms = []string{"initdb", "pg_ctl", "postgres", "psql", "pg_isready"}

// debianBinGlob is where Debian and Ubuntu install each PostgreSQL major version.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the folder holding the PostgreSQL server programs
// (initdb, pg_ctl, postgres) and psql. It tries, in order: hint (a user's
// --pg-bin; when given, it must be usable and nothing else is tried), the
// output of "pg_config --bindir", the newest /usr/lib/postgresql/*/bin, and
// the folder of initdb found in PATH. The error wraps [ErrNoPostgres] when
// nothing usable is found.
func FindBinDir(hint string) (string, error) {
	if hint != "" {
		dir, err := filepath.Abs(hint)
		if err != nil {
			return "", fmt.Errorf("pgcluster: PostgreSQL bin folder %q: %w", hint, err)
		}
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			// Accept the path of one of the programs too.
			dir = filepath.Dir(dir)
		}
		if missing := missingPrograms(dir); len(missing) > 0 {
			return "", fmt.Errorf("pgcluster: PostgreSQL bin folder %s lacks %s: %w", dir, strings.Join(missing, ", "), ErrNoPostgres)
		}
		return dir, nil
	}

	var tried []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			dir := strings.TrimSpace(string(out))
			if dir != "" && len(missingPrograms(dir)) == 0 {
				return dir, nil
			}
			tried = append(tried, dir+" (from pg_config)")
		}
	}

	if dir, ok := newestDebianBinDir(); ok {
		return dir, nil
	}
	tried = append(tried, debianBinGlob)

	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if len(missingPrograms(dir)) == 0 {
			return dir, nil
		}
		tried = append(tried, dir+" (from PATH)")
	} else {
		tried = append(tried, "PATH")
	}
	return "", fmt.Errorf("pgcluster: looked in %s: %w (install PostgreSQL, or name its bin folder)", strings.Join(tried, ", "), ErrNoPostgres)
}

// newestDebianBinDir returns the usable /usr/lib/postgresql/<major>/bin with
// the highest major version.
func newestDebianBinDir() (string, bool) {
	dirs, _ := filepath.Glob(debianBinGlob)
	best, bestVersion := "", -1.0
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil || len(missingPrograms(d)) > 0 {
			continue
		}
		if v > bestVersion {
			best, bestVersion = d, v
		}
	}
	return best, best != ""
}

// missingPrograms lists the required programs that dir lacks (or that are not
// executable files).
func missingPrograms(dir string) []string {
	var missing []string
	for _, name := range requiredPrograms {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	return missing
}
