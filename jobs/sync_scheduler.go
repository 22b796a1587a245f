package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/wedsync/crmhub/db"
)

// SyncSchedulerArgs is the periodic job that starts INCREMENTAL imports for
// integrations with auto-sync on. River runs periodic jobs on its elected
// leader only, so one node does it whatever the number of nodes.
type SyncSchedulerArgs struct{}

// Kind is the job kind, a stable string.
func (SyncSchedulerArgs) Kind() string { return "sync-scheduler" }

// SyncSchedulerInterval is how often due integrations are looked for.
const SyncSchedulerInterval = time.Minute

// SyncSchedulerWorker starts the due incremental syncs.
type SyncSchedulerWorker struct {
	river.WorkerDefaults[SyncSchedulerArgs]
	Pool   *pgxpool.Pool
	Logger *slog.Logger
}

// Work starts an INCREMENTAL run for every integration whose last sync is
// older than its autoSyncMinutes and that has no active run.
func (w *SyncSchedulerWorker) Work(ctx context.Context, job *river.Job[SyncSchedulerArgs]) error {
	q := db.New(w.Pool)
	due, err := q.IntegrationListDueForSync(ctx, 500)
	if err != nil {
		return err
	}
	imports := &Imports{Pool: w.Pool, Queries: q, River: river.ClientFromContext[pgx.Tx](ctx)}
	for _, integ := range due {
		// The key makes a scheduler that runs twice in one interval (a new
		// leader, say) start one run, not two.
		key := fmt.Sprintf("auto-sync:%d:%d", integ.ID, time.Now().Unix()/int64(SyncSchedulerInterval/time.Second))
		run, created, err := imports.Start(ctx, &StartParams{OrgID: integ.OrgID, IntegrationID: integ.ID, Mode: "INCREMENTAL", IdempotencyKey: &key})
		if err != nil {
			return fmt.Errorf("error starting auto-sync of integration %d: %w", integ.ID, err)
		}
		if created {
			w.Logger.Info("auto-sync started", "integration_id", integ.ID, "run_id", run.ID)
		}
	}
	return nil
}
