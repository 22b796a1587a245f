package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// createDatabaseLockKey is the advisory lock key that serializes Ensure's
// check-then-create of the database across processes. It is the ASCII of
// "crmhubDB".
const createDatabaseLockKey int64 = 0x63726d6875624442

// ping connects to dbURL once, within timeout, and checks that the server
// answers a query.
func ping(ctx context.Context, dbURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// waitReady pings dbURL until it answers or timeout passes, because a server
// that has just started (or a container starting next to us) may not accept
// connections yet. It logs once when it has to wait, and returns the last
// error.
func waitReady(ctx context.Context, log *slog.Logger, dbURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const firstDelay = 50 * time.Millisecond
	delay := firstDelay
	for {
		err := ping(ctx, dbURL, min(timeout, 5*time.Second))
		if err == nil {
			return nil
		}
		// A server that answers with a SQL error (bad password, missing
		// database) will not change its mind; only retry "not up yet".
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != pgerrcode.CannotConnectNow {
			return err
		}
		if delay == firstDelay {
			log.Info("database: waiting for PostgreSQL to accept connections", "timeout", timeout, "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// ensureDatabase creates the database name on the server of serverURL if it
// does not exist. An advisory lock makes the check and the CREATE atomic
// against other processes doing the same, and a duplicate_database error is
// accepted in case a process without the lock created it.
func ensureDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("error connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", createDatabaseLockKey); err != nil {
		return fmt.Errorf("error taking the database creation lock: %w", err)
	}
	// Closing the connection releases the lock as well; unlocking explicitly
	// just releases it sooner.
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", createDatabaseLockKey) //nolint:errcheck

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("error checking whether database %q exists: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.DuplicateDatabase {
		return nil
	}
	if err != nil {
		return fmt.Errorf("error creating database %q: %w", name, err)
	}
	return nil
}
