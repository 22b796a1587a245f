package resolvers

import (
	"context"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/model"
)

// loadNode loads a node the principal may read. Rows are looked up by id
// alone and then checked against the caller's access, so another
// organization's row answers exactly like a missing one.
func (r *queryResolver) loadNode(ctx context.Context, p *auth.Principal, typ string, id int64) (model.Node, error) {
	switch typ {
	case typeOrganization:
		if !p.CanRead(id) {
			return nil, db.ErrNotFound
		}
		return r.Queries.OrganizationGetByID(ctx, id)
	case typeIntegration:
		return loadOwned(ctx, p, id, r.Queries.IntegrationGetByIDAnyOrg, func(i *db.Integration) int64 { return i.OrgID })
	case typeClient:
		if p.OrgID != 0 {
			// An organization's own token: its org, and so its cache
			// version, is known before the row is.
			return r.clientByID(ctx, p.OrgID, id)
		}
		return loadOwned(ctx, p, id, r.Queries.ClientGetByIDAnyOrg, func(c *db.Client) int64 { return c.OrgID })
	case typeImportRun:
		return loadOwned(ctx, p, id, r.Queries.ImportRunGetByIDAnyOrg, func(run *db.ImportRun) int64 { return run.OrgID })
	case typeAPIToken:
		if p.Role != auth.RoleOwner {
			return nil, db.ErrNotFound
		}
		return r.Queries.APITokenGetByID(ctx, p.OrgID, id)
	}
	return nil, db.ErrNotFound
}

// loadOwned loads a row by id and hides it unless the principal may read its
// organization.
func loadOwned[T any](ctx context.Context, p *auth.Principal, id int64, get func(context.Context, int64) (T, error), org func(T) int64) (model.Node, error) {
	row, err := get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.CanRead(org(row)) {
		return nil, db.ErrNotFound
	}
	return row, nil
}
