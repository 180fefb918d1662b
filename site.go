package larder

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/larder/larder/repo"
)

// A snapshot's site is the forum (or realm) its backup belongs to: one
// host may run several forums, a Discourse multisite keeps one backup
// folder per database, a Zulip server exports many realms. Retention,
// status and "latest" work per site. Ingest takes it from, in order:
//
//  1. the --site option;
//  2. the Discourse multisite folder: a file in .../backups/<db>/ belongs
//     to site <db> ("default" for a single-site install);
//  3. a Zulip export's realm (string_id in realm.json);
//  4. the site title at the start of a Discourse backup name
//     (<title>-YYYY-MM-DD-HHMMSS...);
//  5. the name of the folder holding the file.
//
// Derived names are cleaned to the characters a site name may have.

// cleanSite turns a derived name into a valid site name, or "".
func cleanSite(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= repo.MaxSite {
			break
		}
	}
	out := strings.TrimLeft(b.String(), "._-")
	if repo.ValidSite(out) != nil {
		return ""
	}
	return out
}

// Discourse backup names: <title>-YYYY-MM-DD-HHMMSS, then -v<migration>
// (classic, dump-only) or -v<version>-<migration> (2026), or nothing
// (before v1.6), then .tar.gz, .sql.gz or .tar.
var discourseName = regexp.MustCompile(`^(.+)-(\d{4}-\d{2}-\d{2}-\d{6})(-v[0-9A-Za-z.+-]*)?\.(tar\.gz|sql\.gz|tar)$`)

// ParseBackupName reads a Discourse backup file name: the site title and
// the time Discourse made the backup (it names files in UTC). ok is false
// for other names.
func ParseBackupName(name string) (title string, made time.Time, ok bool) {
	m := discourseName.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}, false
	}
	t, err := time.ParseInLocation("2006-01-02-150405", m[2], time.UTC)
	if err != nil {
		return "", time.Time{}, false
	}
	return m[1], t, true
}

// siteOf decides a backup's site (see the list above); realm is a Zulip
// export's realm or "".
func siteOf(path, given, realm string) string {
	if given != "" {
		return given
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	dir := filepath.Dir(abs)
	if filepath.Base(filepath.Dir(dir)) == "backups" {
		if s := cleanSite(filepath.Base(dir)); s != "" {
			return s
		}
	}
	if s := cleanSite(realm); s != "" {
		return s
	}
	if title, _, ok := ParseBackupName(filepath.Base(path)); ok {
		if s := cleanSite(title); s != "" {
			return s
		}
	}
	if s := cleanSite(filepath.Base(dir)); s != "" {
		return s
	}
	return "default"
}

// BackupTime is when the backup was made: from its Discourse name, else
// the file's modification time.
func BackupTime(path string, fi os.FileInfo) time.Time {
	if _, t, ok := ParseBackupName(filepath.Base(path)); ok {
		return t
	}
	return fi.ModTime().UTC()
}
