// Package db is crmhub's one seam to PostgreSQL: migrations, queries, the bulk
// upsert of imported clients and the LISTEN/NOTIFY hub. Every query takes the
// organization it reads for, and every operation runs on whatever executor
// the Queries value holds, so it can join a caller's transaction.
package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a row does not exist or belongs to another
// organization; callers cannot tell the two apart, by design.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write breaks a uniqueness rule (a slug that
// is taken, say).
var ErrConflict = errors.New("conflict")

// Executor is what a query runs on: a pool, a connection or a transaction.
type Executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Queries runs crmhub's queries on one executor.
type Queries struct {
	exec Executor
}

// New returns Queries that run on exec.
func New(exec Executor) *Queries { return &Queries{exec: exec} }

// WithTx returns Queries that run inside tx.
func (q *Queries) WithTx(tx pgx.Tx) *Queries { return &Queries{exec: tx} }

// InTx runs fn in a transaction on pool and commits when fn returns nil.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	// A rollback after a commit is a no-op; without it an error would leave
	// the transaction open and pgxpool.Close would block forever.
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("error committing transaction: %w", err)
	}
	return nil
}

// interpretError turns driver errors that callers branch on into this
// package's sentinels.
func interpretError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	return err
}
