package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// The states of an import run.
const (
	RunQueued    = "QUEUED"
	RunRunning   = "RUNNING"
	RunRetrying  = "RETRYING"
	RunSucceeded = "SUCCEEDED"
	RunFailed    = "FAILED"
	RunCancelled = "CANCELLED"
)

// RunIsActive reports whether a run in state may still change.
func RunIsActive(state string) bool {
	return state == RunQueued || state == RunRunning || state == RunRetrying
}

// ImportRun is one import of an integration.
type ImportRun struct {
	ID             int64           `json:"id"`
	OrgID          int64           `json:"orgId"`
	IntegrationID  int64           `json:"integrationId"`
	Mode           string          `json:"mode"`
	State          string          `json:"state"`
	Processed      int64           `json:"processed"`
	Created        int64           `json:"created"`
	Updated        int64           `json:"updated"`
	Unchanged      int64           `json:"unchanged"`
	Rejected       int64           `json:"rejected"`
	Deleted        int64           `json:"deleted"`
	TotalEstimate  *int64          `json:"totalEstimate"`
	Seq            int64           `json:"seq"`
	Checkpoint     *string         `json:"-"`
	Watermark      *string         `json:"-"`
	ErrorCode      *string         `json:"errorCode"`
	ErrorMessage   *string         `json:"errorMessage"`
	Attempt        int32           `json:"attempt"`
	RiverJobID     *int64          `json:"-"`
	IdempotencyKey *string         `json:"-"`
	FileID         *int64          `json:"-"`
	FileFormat     *string         `json:"-"`
	ColumnMapping  json.RawMessage `json:"-"`
	QueuedAt       time.Time       `json:"queuedAt"`
	StartedAt      *time.Time      `json:"startedAt"`
	FinishedAt     *time.Time      `json:"finishedAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

const runColumns = `id, org_id, integration_id, mode, state, processed, created, updated, unchanged, rejected,
	deleted, total_estimate, seq, checkpoint, watermark, error_code, error_message, attempt, river_job_id,
	idempotency_key, file_id, file_format, column_mapping, queued_at, started_at, finished_at, updated_at`

func scanRun(row pgx.Row) (*ImportRun, error) {
	var r ImportRun
	err := row.Scan(&r.ID, &r.OrgID, &r.IntegrationID, &r.Mode, &r.State, &r.Processed, &r.Created, &r.Updated,
		&r.Unchanged, &r.Rejected, &r.Deleted, &r.TotalEstimate, &r.Seq, &r.Checkpoint, &r.Watermark, &r.ErrorCode,
		&r.ErrorMessage, &r.Attempt, &r.RiverJobID, &r.IdempotencyKey, &r.FileID, &r.FileFormat, &r.ColumnMapping,
		&r.QueuedAt, &r.StartedAt, &r.FinishedAt, &r.UpdatedAt)
	if err != nil {
		return nil, interpretError(err)
	}
	return &r, nil
}

// ImportRunCreateParams are the fields of a new run.
type ImportRunCreateParams struct {
	OrgID          int64
	IntegrationID  int64
	Mode           string
	IdempotencyKey *string
	FileID         *int64
	FileFormat     *string
	ColumnMapping  json.RawMessage
	RequestedBy    *int64
}

// ImportRunCreate inserts a QUEUED run. It returns (nil, nil) when the
// integration already has an active run or the idempotency key was used:
// the caller then loads that run with ImportRunGetExisting.
func (q *Queries) ImportRunCreate(ctx context.Context, p *ImportRunCreateParams) (*ImportRun, error) {
	r, err := scanRun(q.exec.QueryRow(ctx, `
		INSERT INTO import_runs (org_id, integration_id, mode, idempotency_key, file_id, file_format, column_mapping, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT DO NOTHING
		RETURNING `+runColumns,
		p.OrgID, p.IntegrationID, p.Mode, p.IdempotencyKey, p.FileID, p.FileFormat, p.ColumnMapping, p.RequestedBy))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error creating import run: %w", err)
	}
	return r, nil
}

// ImportRunGetExisting returns the run a repeated start should answer with:
// the run of the idempotency key if there is one, else the integration's
// active run. ErrNotFound when there is neither.
func (q *Queries) ImportRunGetExisting(ctx context.Context, orgID, integrationID int64, idempotencyKey *string) (*ImportRun, error) {
	r, err := scanRun(q.exec.QueryRow(ctx, `
		SELECT `+runColumns+` FROM import_runs
		WHERE org_id = $1 AND (
			($3::text IS NOT NULL AND idempotency_key = $3) OR
			(integration_id = $2 AND state IN ('QUEUED', 'RUNNING', 'RETRYING')))
		ORDER BY (idempotency_key IS NOT DISTINCT FROM $3) DESC, id DESC
		LIMIT 1`, orgID, integrationID, idempotencyKey))
	if err != nil {
		return nil, fmt.Errorf("error loading existing import run: %w", err)
	}
	return r, nil
}

// ImportRunSetJob records the River job of a run.
func (q *Queries) ImportRunSetJob(ctx context.Context, runID, jobID int64) error {
	_, err := q.exec.Exec(ctx, "UPDATE import_runs SET river_job_id = $2 WHERE id = $1", runID, jobID)
	if err != nil {
		return fmt.Errorf("error recording job of run %d: %w", runID, err)
	}
	return nil
}

// ImportRunGetByID returns a run of orgID.
func (q *Queries) ImportRunGetByID(ctx context.Context, orgID, id int64) (*ImportRun, error) {
	r, err := scanRun(q.exec.QueryRow(ctx, "SELECT "+runColumns+" FROM import_runs WHERE id = $1 AND org_id = $2", id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error loading import run %d: %w", id, err)
	}
	return r, nil
}

// ImportRunGetByIDAnyOrg returns a run whatever its organization; the
// caller checks access (or is the worker).
func (q *Queries) ImportRunGetByIDAnyOrg(ctx context.Context, id int64) (*ImportRun, error) {
	r, err := scanRun(q.exec.QueryRow(ctx, "SELECT "+runColumns+" FROM import_runs WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("error loading import run %d: %w", id, err)
	}
	return r, nil
}

// ImportRunGetMany returns the runs among ids; for dataloaders.
func (q *Queries) ImportRunGetMany(ctx context.Context, ids []int64) ([]*ImportRun, error) {
	rows, err := q.exec.Query(ctx, "SELECT "+runColumns+" FROM import_runs WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("error loading import runs: %w", err)
	}
	return collect(rows, scanRun)
}

// ImportRunFilter narrows a run list.
type ImportRunFilter struct {
	States        []string
	IntegrationID *int64
}

// ImportRunList returns one page of orgID's runs, newest first.
func (q *Queries) ImportRunList(ctx context.Context, orgID int64, f *ImportRunFilter, p *PageParams) ([]*ImportRun, PageResult, error) {
	args := []any{orgID, f.States, f.IntegrationID}
	where := ` WHERE org_id = $1 AND ($2::text[] IS NULL OR state = ANY($2)) AND ($3::bigint IS NULL OR integration_id = $3)`
	// Newest first: paging "forward" walks ids downwards.
	desc := *p
	desc.AfterID, desc.BeforeID = p.BeforeID, p.AfterID
	desc.Backward = !p.Backward
	clause, args := desc.keysetClause("id", args)
	rows, err := q.exec.Query(ctx, "SELECT "+runColumns+" FROM import_runs"+where+clause, args...)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing import runs: %w", err)
	}
	list, err := collect(rows, scanRun)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing import runs: %w", err)
	}
	list, res := finish(&desc, list)
	// finish put the page in ascending order; the list is newest first.
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list, PageResult{HasNext: res.HasPrevious, HasPrevious: res.HasNext}, nil
}

// ImportRunCount counts orgID's runs that match f.
func (q *Queries) ImportRunCount(ctx context.Context, orgID int64, f *ImportRunFilter) (int, error) {
	var n int
	err := q.exec.QueryRow(ctx, `SELECT count(*) FROM import_runs WHERE org_id = $1
		AND ($2::text[] IS NULL OR state = ANY($2)) AND ($3::bigint IS NULL OR integration_id = $3)`,
		orgID, f.States, f.IntegrationID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("error counting import runs: %w", err)
	}
	return n, nil
}

// ProgressChannel is the NOTIFY channel of run changes. Its payload is the
// run as JSON (ImportRun's JSON fields), so listeners need no query.
const ProgressChannel = "crmhub_import_progress"

// ImportRunTransitionParams change a run's state outside page commits.
type ImportRunTransitionParams struct {
	ID    int64
	State string
	// FromStates lists the states the run may be in; the change does nothing
	// (and returns ErrNotFound) otherwise.
	FromStates   []string
	Attempt      *int32
	ErrorCode    *string
	ErrorMessage *string
	// ClearError drops an earlier attempt's error.
	ClearError bool
}

// ImportRunTransition moves a run to a new state, bumps seq and notifies
// progress listeners, in the caller's transaction.
func (q *Queries) ImportRunTransition(ctx context.Context, p *ImportRunTransitionParams) (*ImportRun, error) {
	r, err := scanRun(q.exec.QueryRow(ctx, `
		UPDATE import_runs SET
			state = $2,
			attempt = coalesce($4, attempt),
			error_code = CASE WHEN $7 THEN NULL ELSE coalesce($5, error_code) END,
			error_message = CASE WHEN $7 THEN NULL ELSE coalesce($6, error_message) END,
			started_at = CASE WHEN $2 = 'RUNNING' THEN coalesce(started_at, now()) ELSE started_at END,
			finished_at = CASE WHEN $2 IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN now() ELSE NULL END,
			seq = seq + 1,
			updated_at = now()
		WHERE id = $1 AND state = ANY($3)
		RETURNING `+runColumns,
		p.ID, p.State, p.FromStates, p.Attempt, p.ErrorCode, p.ErrorMessage, p.ClearError))
	if err != nil {
		return nil, fmt.Errorf("error moving import run %d to %s: %w", p.ID, p.State, err)
	}
	if err := q.notifyRun(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

func (q *Queries) notifyRun(ctx context.Context, r *ImportRun) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("error encoding progress: %w", err)
	}
	if _, err := q.exec.Exec(ctx, "SELECT pg_notify($1, $2)", ProgressChannel, string(payload)); err != nil {
		return fmt.Errorf("error notifying progress of run %d: %w", r.ID, err)
	}
	return nil
}

// ImportReject is a record an import could not take.
type ImportReject struct {
	ID         int64
	RunID      int64
	RowNumber  int32
	ExternalID *string
	Reason     string
	Raw        json.RawMessage
}

// ImportRejectList returns one page of a run's rejects in row order.
func (q *Queries) ImportRejectList(ctx context.Context, runID int64, p *PageParams) ([]*ImportReject, PageResult, error) {
	clause, args := p.keysetClause("row_number", []any{runID})
	rows, err := q.exec.Query(ctx,
		"SELECT id, run_id, row_number, external_id, reason, raw FROM import_rejects WHERE run_id = $1"+clause, args...)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing rejects: %w", err)
	}
	list, err := collect(rows, func(row pgx.Row) (*ImportReject, error) {
		var r ImportReject
		return &r, row.Scan(&r.ID, &r.RunID, &r.RowNumber, &r.ExternalID, &r.Reason, &r.Raw)
	})
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing rejects: %w", err)
	}
	list, res := finish(p, list)
	return list, res, nil
}

// ImportRejectCount counts a run's rejects.
func (q *Queries) ImportRejectCount(ctx context.Context, runID int64) (int, error) {
	var n int
	if err := q.exec.QueryRow(ctx, "SELECT count(*) FROM import_rejects WHERE run_id = $1", runID).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting rejects: %w", err)
	}
	return n, nil
}

// ImportRunNotify tells progress listeners about a run as it is now, in the
// caller's transaction.
func (q *Queries) ImportRunNotify(ctx context.Context, r *ImportRun) error {
	return q.notifyRun(ctx, r)
}

// ImportFile is an uploaded file, stored in the database so any node's
// worker can read it.
type ImportFile struct {
	ID          int64
	OrgID       int64
	Filename    string
	ContentType string
	SizeBytes   int64
}

// ImportFileCreateParams are a new file.
type ImportFileCreateParams struct {
	OrgID       int64
	Filename    string
	ContentType string
	Content     []byte
	SHA256      []byte
}

// ImportFileCreate stores an uploaded file.
func (q *Queries) ImportFileCreate(ctx context.Context, p *ImportFileCreateParams) (*ImportFile, error) {
	f := ImportFile{OrgID: p.OrgID, Filename: p.Filename, ContentType: p.ContentType, SizeBytes: int64(len(p.Content))}
	err := q.exec.QueryRow(ctx, `
		INSERT INTO import_files (org_id, filename, content_type, size_bytes, sha256, content)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		p.OrgID, p.Filename, p.ContentType, len(p.Content), p.SHA256, p.Content).Scan(&f.ID)
	if err != nil {
		return nil, fmt.Errorf("error storing file: %w", err)
	}
	return &f, nil
}

// ImportFileChunkSize is how much of a file one read fetches.
const ImportFileChunkSize = 1 << 20

// ImportFileOpen returns a reader over a stored file that fetches it a chunk
// at a time, so a worker never holds a whole file in memory.
func (q *Queries) ImportFileOpen(ctx context.Context, id int64) (*ImportFileReader, error) {
	var size int64
	if err := q.exec.QueryRow(ctx, "SELECT size_bytes FROM import_files WHERE id = $1", id).Scan(&size); err != nil {
		return nil, fmt.Errorf("error opening file %d: %w", id, interpretError(err))
	}
	return &ImportFileReader{ctx: ctx, q: q, id: id, size: size}, nil
}

// ImportFileReader reads a stored file in chunks.
type ImportFileReader struct {
	ctx  context.Context
	q    *Queries
	id   int64
	size int64
	off  int64
	buf  []byte
}

// Read implements io.Reader.
func (r *ImportFileReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		// substring counts from 1.
		err := r.q.exec.QueryRow(r.ctx, "SELECT substring(content FROM $2 FOR $3) FROM import_files WHERE id = $1",
			r.id, r.off+1, ImportFileChunkSize).Scan(&r.buf)
		if err != nil {
			return 0, fmt.Errorf("error reading file %d: %w", r.id, err)
		}
		if len(r.buf) == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		r.off += int64(len(r.buf))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close implements io.Closer.
func (r *ImportFileReader) Close() error { return nil }
