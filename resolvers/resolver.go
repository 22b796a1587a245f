// Package resolvers implements the GraphQL schema of graph/: thin resolver
// methods over the db package, the error presenter that gives every error a
// typed extensions.code, global ids, paging and the request-scoped auth.
package resolvers

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/jobs"
)

// Resolver holds the dependencies of every resolver. It is built once at
// start-up; nothing is constructed per request.
type Resolver struct {
	Log     *slog.Logger
	Pool    *pgxpool.Pool
	Queries *db.Queries
	Sealer  *auth.Sealer
	Imports *jobs.Imports
	// Progress fans committed run changes out to subscriptions.
	Progress *db.ProgressHub
	// Cache is the read tier in front of PostgreSQL; nil reads through.
	Cache *Cache
}
