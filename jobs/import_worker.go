package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/db"
)

// ImportArgs is the job of one import run. The run row holds everything
// else, so the job stays small and a retry reads the latest checkpoint.
type ImportArgs struct {
	RunID int64 `json:"run_id"`
}

// Kind is the job kind, a stable string.
func (ImportArgs) Kind() string { return "import" }

// ImportWorkerConfig configures the import worker.
type ImportWorkerConfig struct {
	Pool   *pgxpool.Pool
	Sealer *auth.Sealer
	// ConnectorFunc builds connectors. Defaults to NewConnector with the
	// production HTTP policy.
	ConnectorFunc ConnectorFunc
	// Slice is how long one job execution reads pages before it hands the
	// run back to the queue (JobSnooze(0)) to continue from its checkpoint,
	// on this node or another. Slicing keeps every execution short, so
	// River's job timeout and stuck-job rescue can be short too: a run whose
	// node died is picked up again quickly. Defaults to 20 seconds.
	Slice time.Duration
	// Logger receives the worker's logs.
	Logger *slog.Logger
	// Draining is closed when the node starts a graceful shutdown: running
	// imports hand their run back to the queue at the next page boundary,
	// instead of reading on until the slice ends. Optional.
	Draining <-chan struct{}
}

// SliceDefault is the default of ImportWorkerConfig.Slice.
const SliceDefault = 20 * time.Second

// ImportWorker works import runs: it streams pages from the connector and
// commits each page, with the run's progress, in one transaction.
type ImportWorker struct {
	river.WorkerDefaults[ImportArgs]
	cfg     ImportWorkerConfig
	queries *db.Queries
}

// NewImportWorker returns the worker.
func NewImportWorker(cfg ImportWorkerConfig) *ImportWorker {
	if cfg.ConnectorFunc == nil {
		cfg.ConnectorFunc = NewConnector(ConnectorOptions{})
	}
	cfg.Slice = cmp.Or(cfg.Slice, SliceDefault)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &ImportWorker{cfg: cfg, queries: db.New(cfg.Pool)}
}

// Timeout bounds one execution: a slice plus the slowest page (a CRM's
// retries and Retry-After waits included).
func (w *ImportWorker) Timeout(*river.Job[ImportArgs]) time.Duration { return JobTimeout(w.cfg.Slice) }

// JobTimeout is the River job timeout for a given slice.
func JobTimeout(slice time.Duration) time.Duration { return 3 * slice }

// NextRetry spaces River's retries of a run whose CRM keeps failing:
// 5 s, 10 s, 20 s… up to 5 minutes, jittered.
func (w *ImportWorker) NextRetry(job *river.Job[ImportArgs]) time.Time {
	d := min(5*time.Second<<min(job.Attempt-1, 10), 5*time.Minute)
	d = d/2 + rand.N(d)
	return time.Now().Add(d)
}

// errSliceDone stops a stream at a page boundary when the slice is used up.
var errSliceDone = errors.New("import slice done")

// Work runs (or resumes) one import run.
func (w *ImportWorker) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	log := w.cfg.Logger.With("run_id", job.Args.RunID, "attempt", job.Attempt)
	run, err := w.queries.ImportRunGetByIDAnyOrg(ctx, job.Args.RunID)
	if errors.Is(err, db.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("import run %d does not exist", job.Args.RunID))
	}
	if err != nil {
		return err
	}
	if !db.RunIsActive(run.State) {
		return nil // Cancelled (or finished) while queued.
	}
	attempt := int32(job.Attempt)
	run, err = w.queries.ImportRunTransition(ctx, &db.ImportRunTransitionParams{
		ID: run.ID, State: db.RunRunning, FromStates: []string{db.RunQueued, db.RunRunning, db.RunRetrying}, Attempt: &attempt,
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}

	err = w.stream(ctx, run)
	switch {
	case err == nil:
		return w.finish(ctx, log, run)
	case errors.Is(err, errSliceDone):
		return river.JobSnooze(0)
	case errors.Is(err, db.ErrRunNotRunning):
		log.Info("import run was cancelled; stopping")
		return nil
	case errors.Is(err, crm.ErrAuth):
		// The integration is marked first, so whoever sees the run FAILED
		// also sees why on the integration.
		if ierr := w.queries.IntegrationSetStatus(ctx, run.IntegrationID, "AUTH_FAILED"); ierr != nil {
			return ierr
		}
		if ferr := w.fail(ctx, run, "AUTH_FAILED", err); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	case errors.Is(err, crm.ErrBadFile):
		if ferr := w.fail(ctx, run, "BAD_FILE", err); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	case errors.Is(err, crm.ErrInvalidRequest):
		if ferr := w.fail(ctx, run, "INTERNAL", err); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	}

	// The run may have been cancelled while a page was in flight: River
	// cancels the job's context, and the run is already CANCELLED.
	if ctx.Err() != nil {
		if cur, gerr := w.queries.ImportRunGetByIDAnyOrg(context.WithoutCancel(ctx), run.ID); gerr == nil && !db.RunIsActive(cur.State) {
			return nil
		}
	}
	code := "INTERNAL"
	if errors.Is(err, crm.ErrUnavailable) {
		code = "CRM_UNAVAILABLE"
	}
	if job.Attempt >= job.MaxAttempts {
		if ferr := w.fail(context.WithoutCancel(ctx), run, code, err); ferr != nil {
			return ferr
		}
		return err
	}
	log.Warn("import attempt failed; River will retry", "err", err)
	msg := publicMessage(code, err)
	if _, terr := w.queries.ImportRunTransition(context.WithoutCancel(ctx), &db.ImportRunTransitionParams{
		ID: run.ID, State: db.RunRetrying, FromStates: []string{db.RunRunning}, ErrorCode: &code, ErrorMessage: &msg,
	}); terr != nil && !errors.Is(terr, db.ErrNotFound) {
		return errors.Join(err, terr)
	}
	return err
}

// stream reads pages from the run's checkpoint and commits each one; it
// stops with errSliceDone when the slice is used up.
func (w *ImportWorker) stream(ctx context.Context, run *db.ImportRun) error {
	integ, err := w.queries.IntegrationGetByIDAnyOrg(ctx, run.IntegrationID)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("%w: the integration was deleted", crm.ErrInvalidRequest)
	}
	if err != nil {
		return err
	}
	in := &ConnectorInput{Integration: integ, Run: run}
	if len(integ.CredentialsSealed) > 0 && integ.CredentialsKeyID != nil {
		if in.Credentials, err = w.cfg.Sealer.OpenCredentials(integ.OrgID, integ.CredentialsSealed, *integ.CredentialsKeyID); err != nil {
			return fmt.Errorf("error opening credentials of integration %d: %w", integ.ID, err)
		}
	}
	if run.FileID != nil {
		fileID := *run.FileID
		in.OpenFile = func() (io.ReadCloser, error) { return w.queries.ImportFileOpen(ctx, fileID) }
	}
	conn, err := w.cfg.ConnectorFunc(ctx, in)
	if err != nil {
		return err
	}

	req := crm.StreamRequest{Mode: crm.ModeFull}
	switch run.Mode {
	case "INCREMENTAL":
		req.Mode = crm.ModeIncremental
		if integ.IncrementalCheckpoint != nil {
			req.Watermark = *integ.IncrementalCheckpoint
		}
	}
	if run.Checkpoint != nil {
		req.Resume = *run.Checkpoint
	}
	deadline := time.Now().Add(w.cfg.Slice)
	return pipelinePages(ctx, conn, req, func(ctx context.Context, page crm.Page) error {
		err := db.InTx(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
			_, err := w.queries.WithTx(tx).ImportPageApply(ctx, &db.ImportPageParams{
				OrgID: run.OrgID, IntegrationID: run.IntegrationID, RunID: run.ID, Page: &page,
			})
			return err
		})
		if err != nil {
			return err
		}
		select {
		case <-w.cfg.Draining:
			return errSliceDone
		default:
		}
		if time.Now().After(deadline) {
			return errSliceDone
		}
		return nil
	})
}

// prefetchPages is how many pages the connector may read ahead of the page
// being committed. Reading the next page while the current one commits
// overlaps the CRM's latency with the database's; the bound keeps memory
// flat whatever the import's size.
const prefetchPages = 2

// pipelinePages streams pages from conn on one goroutine and commits them
// with commit on the caller's, in order. The first error on either side
// stops both; commit's error wins.
func pipelinePages(ctx context.Context, conn crm.Connector, req crm.StreamRequest, commit func(context.Context, crm.Page) error) error {
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan crm.Page, prefetchPages)
	readErr := make(chan error, 1)
	go func() {
		defer close(pages)
		readErr <- conn.Stream(readCtx, req, func(ctx context.Context, p crm.Page) error {
			select {
			case pages <- p:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for p := range pages {
		if err := commit(ctx, p); err != nil {
			cancel()
			for range pages { // Let the reader see the cancel and finish.
			}
			<-readErr
			return err
		}
	}
	return <-readErr
}

func (w *ImportWorker) finish(ctx context.Context, log *slog.Logger, run *db.ImportRun) error {
	var done *db.ImportRun
	err := db.InTx(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		cur, err := w.queries.WithTx(tx).ImportRunGetByIDAnyOrg(ctx, run.ID)
		if err != nil {
			return err
		}
		done, err = w.queries.WithTx(tx).ImportRunFinish(ctx, cur)
		return err
	})
	if errors.Is(err, db.ErrRunNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("import succeeded", "processed", done.Processed, "created", done.Created, "updated", done.Updated,
		"unchanged", done.Unchanged, "rejected", done.Rejected, "deleted", done.Deleted)
	return nil
}

// fail ends a run as FAILED with code.
func (w *ImportWorker) fail(ctx context.Context, run *db.ImportRun, code string, cause error) error {
	msg := publicMessage(code, cause)
	_, err := w.queries.ImportRunTransition(ctx, &db.ImportRunTransitionParams{
		ID: run.ID, State: db.RunFailed, FromStates: []string{db.RunQueued, db.RunRunning, db.RunRetrying},
		ErrorCode: &code, ErrorMessage: &msg,
	})
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	return err
}

// publicMessage is what a vendor sees of an error: connector errors carry
// the CRM's own words (never credentials); anything else is internal.
func publicMessage(code string, err error) string {
	switch code {
	case "AUTH_FAILED":
		return "The CRM refused the credentials: " + crm.Truncate(err.Error(), 300) + ". Update the integration's credentials and retry."
	case "CRM_UNAVAILABLE", "BAD_FILE":
		return crm.Truncate(err.Error(), 500)
	default:
		var httpErr *crm.HTTPError
		if errors.As(err, &httpErr) {
			return crm.Truncate(httpErr.Error(), 500)
		}
		return "internal error"
	}
}
