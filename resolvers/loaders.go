package resolvers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/wedsync/crmhub/db"
)

// loaderWait is how long a loader collects keys before it queries: long
// enough for gqlgen's concurrent field resolvers of one list to join the
// batch, short against a request's cost.
const loaderWait = 2 * time.Millisecond

// Loaders batch one request's nested lookups (client → integration, run →
// integration, integration → last run), so a page of 100 clients costs a
// fixed number of queries whatever their integrations.
type Loaders struct {
	// IntegrationByID loads integrations of any organization, deleted or
	// not; callers check the organization.
	IntegrationByID *dataloadgen.Loader[int64, *db.Integration]
	// RunByID loads import runs of any organization; callers check the
	// organization.
	RunByID *dataloadgen.Loader[int64, *db.ImportRun]
}

// NewLoaders returns empty loaders over q, for one request.
func NewLoaders(q *db.Queries) *Loaders {
	return &Loaders{
		IntegrationByID: dataloadgen.NewLoader(byID(q.IntegrationGetManyAnyOrg, func(i *db.Integration) int64 { return i.ID }),
			dataloadgen.WithWait(loaderWait)),
		RunByID: dataloadgen.NewLoader(byID(q.ImportRunGetMany, func(r *db.ImportRun) int64 { return r.ID }),
			dataloadgen.WithWait(loaderWait)),
	}
}

// byID turns a "rows among ids" query into a loader fetch: one value or
// db.ErrNotFound per key, in the keys' order.
func byID[T any](get func(context.Context, []int64) ([]T, error), id func(T) int64) func(context.Context, []int64) ([]T, []error) {
	return func(ctx context.Context, keys []int64) ([]T, []error) {
		values := make([]T, len(keys))
		errs := make([]error, len(keys))
		rows, err := get(ctx, keys)
		if err != nil {
			for i := range errs {
				errs[i] = err
			}
			return values, errs
		}
		found := make(map[int64]T, len(rows))
		for _, row := range rows {
			found[id(row)] = row
		}
		for i, k := range keys {
			v, ok := found[k]
			if !ok {
				errs[i] = fmt.Errorf("error loading %d: %w", k, db.ErrNotFound)
				continue
			}
			values[i] = v
		}
		return values, errs
	}
}

type loadersKey struct{}

// WithLoaders gives every ordinary request loaders of its own. Long-lived
// subscriptions (WebSocket, SSE) get none: a loader caches for its whole
// life, and an import's progress must show fresh rows; their resolvers fall
// back to plain queries.
func (r *Resolver) WithLoaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") != "" || req.Header.Get("Accept") == "text/event-stream" {
			next.ServeHTTP(w, req)
			return
		}
		ctx := context.WithValue(req.Context(), loadersKey{}, NewLoaders(r.Queries))
		next.ServeHTTP(w, req.WithContext(ctx))
	})
}

func loadersFrom(ctx context.Context) *Loaders {
	l, _ := ctx.Value(loadersKey{}).(*Loaders)
	return l
}

// integrationOf loads integration id of orgID, deleted or not, batched when
// the request has loaders.
func (r *Resolver) integrationOf(ctx context.Context, orgID, id int64) (*db.Integration, error) {
	l := loadersFrom(ctx)
	if l == nil {
		return r.Queries.IntegrationGetByIDAnyOrgIncludingDeleted(ctx, orgID, id)
	}
	i, err := l.IntegrationByID.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if i.OrgID != orgID {
		return nil, fmt.Errorf("error loading integration %d: %w", id, db.ErrNotFound)
	}
	return i, nil
}

// runOf loads import run id of orgID, batched when the request has loaders.
func (r *Resolver) runOf(ctx context.Context, orgID, id int64) (*db.ImportRun, error) {
	l := loadersFrom(ctx)
	if l == nil {
		return r.Queries.ImportRunGetByID(ctx, orgID, id)
	}
	run, err := l.RunByID.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.OrgID != orgID {
		return nil, fmt.Errorf("error loading import run %d: %w", id, db.ErrNotFound)
	}
	return run, nil
}
