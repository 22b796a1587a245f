package db

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockID is the advisory lock that serialises migrations, so two
// processes that start at once take turns instead of racing.
const migrationLockID = 0x6372_6d68_7562 // "crmhub"

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("error reading embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q must be named NNNN_name.sql", e.Name())
		}
		body, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("error reading migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies River's migrations and then crmhub's own, under an
// advisory lock held on one session. It is safe to run again and from
// several processes at once: the second waits for the first and then finds
// nothing to do. River's migrations run one transaction per version (some add
// enum values, which PostgreSQL will not use in the transaction that added
// them); crmhub's run in one transaction.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("error acquiring connection for migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("error taking migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: a cancelled ctx must not leave the lock
		// held on a connection that goes back to the pool.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockID)
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log.With("module", "river")})
	if err != nil {
		return fmt.Errorf("error creating River migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("error applying River migrations: %w", err)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning migration transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS crmhub_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("error creating migrations table: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM crmhub_migrations")
	if err != nil {
		return fmt.Errorf("error listing applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("error listing applied migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range versions {
		applied[int(v)] = true
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("error applying migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO crmhub_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return fmt.Errorf("error recording migration %s: %w", m.name, err)
		}
		log.Info("applied migration", "version", m.version, "name", m.name)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing migrations: %w", err)
	}
	return nil
}

// ErrNotMigrated is returned by CheckMigrated when the database lacks some
// of crmhub's migrations.
var ErrNotMigrated = errors.New("the database is not migrated: run `crmhub migrate` first")

// CheckMigrated tells whether every embedded migration has been applied, so
// that serve refuses to start on an old schema instead of failing later.
func CheckMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	var latest int
	err = pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM crmhub_migrations").Scan(&latest)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return ErrNotMigrated
	}
	if err != nil {
		return fmt.Errorf("error checking migrations: %w", err)
	}
	if latest < migrations[len(migrations)-1].version {
		return ErrNotMigrated
	}
	return nil
}

// SchemaFingerprint is a hash of every embedded migration: it changes when
// the schema does, so tests can keep a template database per schema.
func SchemaFingerprint() string {
	h := sha256.New()
	migrations, _ := loadMigrations()
	for _, m := range migrations {
		h.Write([]byte(m.name))
		h.Write([]byte(m.sql))
	}
	// River's version is part of it too: a River upgrade brings new River
	// migrations.
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/riverqueue/river" {
				h.Write([]byte(dep.Version))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
