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
)

// QueueImports is the queue import jobs run on.
const QueueImports = "imports"

// Config configures the River client.
type Config struct {
	// MaxWorkers is how many import jobs this node works at once. Defaults
	// to 25.
	MaxWorkers int
	// Work says whether this client works jobs. A client that does not only
	// inserts them (commands such as `crmhub org create`). Defaults to false.
	Work bool
	// Logger receives River's logs, tagged module=river.
	Logger *slog.Logger
}

// MaxWorkersDefault is the default of Config.MaxWorkers.
const MaxWorkersDefault = 25

// WithDefaults returns the config with defaults filled in.
func (c Config) WithDefaults() Config {
	c.MaxWorkers = cmp.Or(c.MaxWorkers, MaxWorkersDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// NewClient returns the River client, with crmhub's workers registered when
// cfg.Work is set.
func NewClient(pool *pgxpool.Pool, cfg Config) (*river.Client[pgx.Tx], error) {
	cfg = cfg.WithDefaults()
	rc := &river.Config{
		Logger: cfg.Logger.With("module", "river"),
		// A job whose node died is rescued after this long; see README
		// "Resumption".
		RescueStuckJobsAfter: 2 * time.Minute,
	}
	if cfg.Work {
		workers := river.NewWorkers()
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{QueueImports: {MaxWorkers: cfg.MaxWorkers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("error creating River client: %w", err)
	}
	return client, nil
}
