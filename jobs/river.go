// Package jobs runs crmhub's background work on River, in the same
// PostgreSQL database as the data: the import jobs and the periodic sync
// scheduler. One file per job kind holds its Args and its Worker.
package jobs

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/wedsync/crmhub/auth"
)

// QueueImports is the queue import jobs run on.
const QueueImports = "imports"

// Config configures the River client.
type Config struct {
	// MaxWorkers is how many import jobs this node works at once. Defaults
	// to 25.
	MaxWorkers int
	// Work says whether this client works jobs. A client that does not only
	// inserts them. Defaults to false.
	Work bool
	// Sealer opens CRM credentials; required when Work is set.
	Sealer *auth.Sealer
	// ConnectorFunc builds connectors. Defaults to the real ones.
	ConnectorFunc ConnectorFunc
	// Slice is how long one execution of an import job reads before handing
	// the run back to the queue. Defaults to 20 seconds.
	Slice time.Duration
	// RescueStuckJobsAfter is how long a job may stay running before River
	// takes it as stuck (its node died) and works it again. Defaults to the
	// job timeout (3 slices) plus 15 seconds; it must exceed the job timeout.
	RescueStuckJobsAfter time.Duration
	// Logger receives River's logs, tagged module=river.
	Logger *slog.Logger
	// Draining is closed when the node starts a graceful shutdown; see
	// ImportWorkerConfig.Draining. Optional.
	Draining <-chan struct{}
}

// MaxWorkersDefault is the default of Config.MaxWorkers.
const MaxWorkersDefault = 25

// WithDefaults returns the config with defaults filled in.
func (c Config) WithDefaults() Config {
	c.MaxWorkers = cmp.Or(c.MaxWorkers, MaxWorkersDefault)
	c.Slice = cmp.Or(c.Slice, SliceDefault)
	c.RescueStuckJobsAfter = cmp.Or(c.RescueStuckJobsAfter, JobTimeout(c.Slice)+15*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// NewClient returns the River client, with crmhub's workers and the
// periodic sync scheduler when cfg.Work is set.
func NewClient(pool *pgxpool.Pool, cfg Config) (*river.Client[pgx.Tx], error) {
	cfg = cfg.WithDefaults()
	rc := &river.Config{
		Logger:               cfg.Logger.With("module", "river"),
		JobTimeout:           JobTimeout(cfg.Slice),
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		ErrorHandler:         &errorHandler{log: cfg.Logger.With("module", "river")},
	}
	if cfg.Work {
		workers := river.NewWorkers()
		river.AddWorker(workers, NewImportWorker(ImportWorkerConfig{
			Pool: pool, Sealer: cfg.Sealer, ConnectorFunc: cfg.ConnectorFunc, Slice: cfg.Slice, Logger: cfg.Logger,
			Draining: cfg.Draining,
		}))
		river.AddWorker(workers, &SyncSchedulerWorker{Pool: pool, Logger: cfg.Logger})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{
			QueueImports:       {MaxWorkers: cfg.MaxWorkers},
			river.QueueDefault: {MaxWorkers: 2},
		}
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(SyncSchedulerInterval),
				func() (river.JobArgs, *river.InsertOpts) { return SyncSchedulerArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("error creating River client: %w", err)
	}
	return client, nil
}
