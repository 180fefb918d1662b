package larder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/larder/larder/crypto"

	"github.com/larder/larder/internal/pgcluster"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/repo"
)

// DrillOptions tune Drill.
type DrillOptions struct {
	// Postgres loads the restored dump into a scratch PostgreSQL cluster
	// and compares its row counts with the snapshot's summary.
	Postgres bool
	// PGBin is where the PostgreSQL programs are (default: searched).
	PGBin string
	// TempDir holds the restored file and the scratch cluster.
	TempDir string
	// Host names this machine in the drill record.
	Host string
	// NoRecord skips storing the drill record.
	NoRecord bool
}

// Drill proves that a snapshot restores: the original is rebuilt and its
// SHA-256 checked; with Postgres, the backup is unpacked with the real
// tools the way Discourse restores it (tar, gzip) and its dump loaded into
// a scratch cluster with psql --single-transaction -v ON_ERROR_STOP=1 (or
// pg_restore for a directory-format dump), and the tables' row counts are
// compared with the counts recorded at ingest. The result is signed and
// stored in the repository (master key), where audit sees it.
func Drill(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions) (*repo.DrillRecord, error) {
	if r.Role() != crypto.RoleMaster {
		return nil, fmt.Errorf("%w: drills need the master key", repo.ErrPermission)
	}
	rec := &repo.DrillRecord{Snapshot: snap.ID, Time: time.Now().UTC(), Host: opts.Host}
	var derr error
	if opts.Postgres {
		derr = drillPostgres(ctx, r, snap, opts, rec)
	} else {
		var n uint64
		n, derr = Restore(ctx, r, snap, io.Discard)
		rec.Bytes = n
		rec.SHA256OK = derr == nil
	}
	if derr != nil {
		if errors.Is(derr, context.Canceled) {
			return nil, derr
		}
		rec.Error = derr.Error()
	}
	rec.OK = derr == nil && rec.SHA256OK && (rec.Postgres == nil || len(rec.Postgres.Mismatches) == 0)
	if !opts.NoRecord {
		if _, err := r.RecordDrill(context.WithoutCancel(ctx), rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

func drillPostgres(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, opts DrillOptions, rec *repo.DrillRecord) (err error) {
	bin, err := pgcluster.FindBinDir(opts.PGBin)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(opts.TempDir, "larder-drill-")
	if err != nil {
		return err
	}
	// The restored backup holds private data: a folder that stays is a
	// failure of the drill.
	defer func() {
		if rerr := os.RemoveAll(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the drill's folder: %w", rerr))
		}
	}()
	orig := filepath.Join(work, "backup")
	n, err := RestoreFile(ctx, r, snap, orig)
	rec.Bytes = n
	if err != nil {
		return err
	}
	rec.SHA256OK = true

	var summary recompress.Summary
	if err := json.Unmarshal(snap.Manifest.Summary, &summary); err != nil {
		return fmt.Errorf("snapshot %s: summary: %w", snap.ID.Short(), err)
	}
	if len(summary.Tables) == 0 {
		// Nothing to load and nothing to compare: no dump was found at
		// ingest. The file itself rebuilt exactly (checked above).
		rec.Postgres = &repo.PGDrill{Mismatches: []string{"the snapshot's summary lists no tables: no PostgreSQL dump was found at ingest"}}
		return nil
	}

	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: bin, Dir: opts.TempDir})
	if err != nil {
		return err
	}
	defer func() {
		if serr := cluster.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stopping the drill's PostgreSQL: %w", serr))
		}
	}()
	const db = "larder_drill"
	if err := cluster.CreateDatabase(ctx, db); err != nil {
		return err
	}
	// pg_dump --schema=public writes CREATE SCHEMA public; start without it.
	if err := cluster.Exec(ctx, db, "DROP SCHEMA public CASCADE;"); err != nil {
		return err
	}
	files, err := cluster.LoadBackup(ctx, db, orig, work)
	if err != nil {
		return err
	}
	pg := &repo.PGDrill{Version: cluster.Version()}
	rec.Postgres = pg
	for _, t := range summary.Tables {
		table := t.Table
		if name, ok := strings.CutPrefix(table, "file "); ok {
			// Directory format: the data file's table, from pg_restore -l.
			if table, ok = files[name]; !ok {
				pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: no table in the dump's table of contents", name))
				continue
			}
		}
		got, err := cluster.CountRows(ctx, db, table)
		if err != nil {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %v", table, firstLine(err.Error())))
			continue
		}
		pg.Tables++
		pg.Rows += got
		if got != t.Rows {
			pg.Mismatches = append(pg.Mismatches, fmt.Sprintf("%s: %d rows loaded, %d recorded at ingest", table, got, t.Rows))
		}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
