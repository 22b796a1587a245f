package resolvers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
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

// selects tells whether the current field's selection reaches path (field
// names, through fragments), e.g. "nodes", "integration".
func selects(ctx context.Context, path ...string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !graphql.HasOperationContext(ctx) {
		return false
	}
	oc := graphql.GetOperationContext(ctx)
	var walk func(sel ast.SelectionSet, path []string) bool
	walk = func(sel ast.SelectionSet, path []string) bool {
		if len(path) == 0 {
			return true
		}
		for _, f := range graphql.CollectFields(oc, sel, nil) {
			if f.Name == path[0] && walk(f.Selections, path[1:]) {
				return true
			}
		}
		return false
	}
	return walk(fc.Field.Selections, path)
}

// primeClientPage loads, in one query each, the integrations (and their
// last runs) a page of clients will ask for, when the query selects them:
// the page then costs the same number of queries however its resolvers are
// scheduled, rather than relying on the loaders' batching window alone.
func (r *Resolver) primeClientPage(ctx context.Context, rows []*db.Client) error {
	l := loadersFrom(ctx)
	if l == nil || len(rows) == 0 {
		return nil
	}
	withIntegration := selects(ctx, "nodes", "integration") || selects(ctx, "edges", "node", "integration")
	if !withIntegration {
		return nil
	}
	seen := map[int64]bool{}
	var ids []int64
	for _, c := range rows {
		if !seen[c.IntegrationID] {
			seen[c.IntegrationID] = true
			ids = append(ids, c.IntegrationID)
		}
	}
	integrations, err := r.Queries.IntegrationGetManyAnyOrg(ctx, ids)
	if err != nil {
		return err
	}
	var runIDs []int64
	for _, i := range integrations {
		l.IntegrationByID.Prime(i.ID, i)
		if i.LastRunID != nil {
			runIDs = append(runIDs, *i.LastRunID)
		}
	}
	withRun := selects(ctx, "nodes", "integration", "lastRun") || selects(ctx, "edges", "node", "integration", "lastRun")
	if !withRun || len(runIDs) == 0 {
		return nil
	}
	runs, err := r.Queries.ImportRunGetMany(ctx, runIDs)
	if err != nil {
		return err
	}
	for _, run := range runs {
		l.RunByID.Prime(run.ID, run)
	}
	return nil
}
