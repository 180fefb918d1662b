package larder

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Discourse backup names of every era give their title and time (UTC);
// other names give nothing.
func TestParseBackupName(t *testing.T) {
	for name, want := range map[string]string{
		"discourse-2026-01-05-031742-v20251130020603.tar.gz":      "discourse 2026-01-05T03:17:42Z",
		"my-forum-2026-01-06-032511-v20251130140459.sql.gz":       "my-forum 2026-01-06T03:25:11Z",
		"forum-2026-01-06-032511-v3.5.0-20251130140459.tar":       "forum 2026-01-06T03:25:11Z",
		"old-site-2015-07-01-120000.tar.gz":                       "old-site 2015-07-01T12:00:00Z",
		"zulip-export-qub0z170.tar.gz":                            "",
		"discourse-2026-13-05-031742-v20251130020603.tar.gz":      "", // month 13
		"discourse-2026-01-05-031742-v20251130020603.tar.gz.part": "",
	} {
		title, made, ok := ParseBackupName(name)
		got := ""
		if ok {
			got = title + " " + made.Format(time.RFC3339)
		}
		if got != want {
			t.Errorf("ParseBackupName(%q) = %q, want %q", name, got, want)
		}
	}
}

// The site comes from --site, the multisite folder, the Zulip realm, the
// name's title, the folder, in that order, cleaned to a valid name.
func TestSiteOf(t *testing.T) {
	classic := "discourse-2026-01-05-031742-v20251130020603.tar.gz"
	for _, c := range []struct{ path, given, realm, want string }{
		{"/var/discourse/shared/standalone/backups/default/" + classic, "", "", "default"},
		{"/var/discourse/shared/standalone/backups/second_db/" + classic, "", "", "second_db"},
		{"/var/discourse/shared/standalone/backups/default/" + classic, "mine", "", "mine"},
		{"/tmp/x/zulip-export-qub0z170.tar.gz", "", "chat", "chat"},
		{"/tmp/x/zulip-export-qub0z170.tar.gz", "", "", "x"},
		{"/root/My Forum-2026-01-05-031742-v20251130020603.tar.gz", "", "", "My-Forum"},
		{"/srv/dumps/forum.sql.gz", "", "", "dumps"},
		{"/srv/dumps/forum.sql.gz", "", "../../etc", "etc"},
		{"/forum.sql.gz", "", "", "default"},
	} {
		if got := siteOf(c.path, c.given, c.realm); got != c.want {
			t.Errorf("siteOf(%q, %q, %q) = %q, want %q", c.path, c.given, c.realm, got, c.want)
		}
	}
}

// A backup's time is its name's, else the file's modification time.
func TestBackupTime(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for name, want := range map[string]time.Time{
		"discourse-2026-01-05-031742-v20251130020603.tar.gz": time.Date(2026, 1, 5, 3, 17, 42, 0, time.UTC),
		"zulip-export-qub0z170.tar.gz":                       mtime,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := BackupTime(p, fi); !got.Equal(want) {
			t.Errorf("BackupTime(%s) = %s, want %s", name, got, want)
		}
	}
}
