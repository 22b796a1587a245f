package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/wedsync/crmhub/db"
)

// ImportMaxAttempts is how many times River tries an import whose CRM keeps
// failing transiently (each attempt retries inside the connector first).
const ImportMaxAttempts = 8

// Imports starts, cancels and retries import runs. Every start inserts the
// run and its River job in one transaction: no run without a job, no job
// without a run.
type Imports struct {
	Pool    *pgxpool.Pool
	Queries *db.Queries
	River   *river.Client[pgx.Tx]
}

// StartParams say what to import.
type StartParams struct {
	OrgID          int64
	IntegrationID  int64
	Mode           string
	IdempotencyKey *string
	RequestedBy    *int64
	// File is set for FILE runs: a new upload to store with the run.
	File *db.ImportFileCreateParams
	// FileID is set for a retried FILE run: the stored file to read again.
	FileID        *int64
	FileFormat    *string
	ColumnMapping map[string]string
}

// errExisting rolls back a start that found an existing run, so an upload
// is not stored twice.
var errExisting = errors.New("an existing run answers this start")

// Start creates a QUEUED run and its job. When the integration already has
// an active run, or the idempotency key was used before, it returns that run
// instead and created is false.
func (s *Imports) Start(ctx context.Context, p *StartParams) (run *db.ImportRun, created bool, err error) {
	err = db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		q := s.Queries.WithTx(tx)
		params := &db.ImportRunCreateParams{
			OrgID: p.OrgID, IntegrationID: p.IntegrationID, Mode: p.Mode, IdempotencyKey: p.IdempotencyKey,
			RequestedBy: p.RequestedBy, FileID: p.FileID, FileFormat: p.FileFormat,
		}
		if p.ColumnMapping != nil {
			params.ColumnMapping, _ = json.Marshal(p.ColumnMapping)
		}
		if p.File != nil {
			sum := sha256.Sum256(p.File.Content)
			p.File.SHA256 = sum[:]
			f, err := q.ImportFileCreate(ctx, p.File)
			if err != nil {
				return err
			}
			params.FileID = &f.ID
		}
		r, err := q.ImportRunCreate(ctx, params)
		if err != nil {
			return err
		}
		if r == nil {
			return errExisting
		}
		res, err := s.River.InsertTx(ctx, tx, ImportArgs{RunID: r.ID}, &river.InsertOpts{
			Queue: QueueImports, MaxAttempts: ImportMaxAttempts,
		})
		if err != nil {
			return fmt.Errorf("error enqueuing import job: %w", err)
		}
		if err := q.ImportRunSetJob(ctx, r.ID, res.Job.ID); err != nil {
			return err
		}
		r.RiverJobID = &res.Job.ID
		if err := q.IntegrationSetLastRun(ctx, p.IntegrationID, r.ID); err != nil {
			return err
		}
		if err := q.ImportRunNotify(ctx, r); err != nil {
			return err
		}
		run, created = r, true
		return nil
	})
	if errors.Is(err, errExisting) {
		run, err = s.Queries.ImportRunGetExisting(ctx, p.OrgID, p.IntegrationID, p.IdempotencyKey)
		if errors.Is(err, db.ErrNotFound) {
			// The active run ended between the two statements: try again.
			return s.Start(ctx, p)
		}
		return run, false, err
	}
	return run, created, err
}

// Cancel marks an active run CANCELLED and cancels its job; a worker on any
// node stops before its next page commit, and what was committed stays. A
// run that already ended is returned as it is.
func (s *Imports) Cancel(ctx context.Context, run *db.ImportRun, reason string) (*db.ImportRun, error) {
	var out *db.ImportRun
	err := db.InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		q := s.Queries.WithTx(tx)
		code := "CANCELLED"
		r, err := q.ImportRunTransition(ctx, &db.ImportRunTransitionParams{
			ID: run.ID, State: db.RunCancelled, FromStates: []string{db.RunQueued, db.RunRunning, db.RunRetrying},
			ErrorCode: &code, ErrorMessage: &reason,
		})
		if errors.Is(err, db.ErrNotFound) {
			out, err = q.ImportRunGetByIDAnyOrg(ctx, run.ID)
			return err
		}
		if err != nil {
			return err
		}
		if r.RiverJobID != nil {
			if _, err := s.River.JobCancelTx(ctx, tx, *r.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("error cancelling job of run %d: %w", r.ID, err)
			}
		}
		out = r
		return nil
	})
	return out, err
}

// ErrNotRetryable is returned for a retry of a run that has not ended in
// FAILED or CANCELLED.
var ErrNotRetryable = errors.New("only a FAILED or CANCELLED run can be retried")

// Retry starts a new run like run (same integration, mode and file).
func (s *Imports) Retry(ctx context.Context, run *db.ImportRun, requestedBy *int64) (*db.ImportRun, error) {
	if run.State != db.RunFailed && run.State != db.RunCancelled {
		return nil, ErrNotRetryable
	}
	p := &StartParams{
		OrgID: run.OrgID, IntegrationID: run.IntegrationID, Mode: run.Mode, RequestedBy: requestedBy,
		FileID: run.FileID, FileFormat: run.FileFormat,
	}
	if len(run.ColumnMapping) > 0 {
		if err := json.Unmarshal(run.ColumnMapping, &p.ColumnMapping); err != nil {
			return nil, fmt.Errorf("error reading column mapping of run %d: %w", run.ID, err)
		}
	}
	r, _, err := s.Start(ctx, p)
	return r, err
}
