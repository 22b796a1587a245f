// Package dbtest gives each test a database of its own, created from a
// migrated template, so tests run in parallel against real PostgreSQL and
// leave nothing behind.
package dbtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/bootstrap"
)

// templateLockID serialises template creation across test binaries.
const templateLockID = 0x6372_6d68_7574 // "crmhut"

var (
	setupOnce sync.Once
	setupErr  error
	adminURL  string
	template  string
	counter   atomic.Int64
)

// setup finds the server with the same bootstrap as `make run` and makes
// sure a migrated template database exists for this version of the
// migrations.
func setup() error {
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		base, err := bootstrap.URL(ctx, log, bootstrap.Config{
			DatabaseURL: os.Getenv("DATABASE_URL"),
			DataDir:     filepath.Join(repoRoot(), ".data", "postgres"),
			Stdout:      os.Stderr,
			Stderr:      os.Stderr,
		})
		if err != nil {
			setupErr = fmt.Errorf("no PostgreSQL for tests: %w", err)
			return
		}
		adminURL = withDatabase(base, "postgres")
		template = "crmhub_tmpl_" + db.SchemaFingerprint()[:16]
		setupErr = ensureTemplate(ctx, log)
	})
	return setupErr
}

func ensureTemplate(ctx context.Context, log *slog.Logger) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("error connecting to %s: %w", redact(adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockID); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockID) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(adminURL, building))
	if err != nil {
		return err
	}
	err = db.Migrate(ctx, pool, log)
	pool.Close()
	if err != nil {
		return fmt.Errorf("error migrating template: %w", err)
	}
	// Rename last, so a template that exists is always complete.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+template); err != nil {
		return err
	}
	return nil
}

// URL returns the URL of a new, migrated, empty database that is dropped
// when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := fmt.Sprintf("crmhub_t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, counter.Add(1))
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE … TEMPLATE fails while another session is copying the
	// same template; retry briefly.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template)
		if err == nil || attempt == 50 || !strings.Contains(err.Error(), "is being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("error creating test database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			t.Errorf("error dropping test database: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("error dropping test database: %v", err)
		}
	})
	return withDatabase(adminURL, name)
}

// Pool returns a pool on a new test database, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// repoRoot is the module's root, so every test binary shares one .data.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
