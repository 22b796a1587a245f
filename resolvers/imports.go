package resolvers

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// MaxUploadBytes is the largest import file (50 MiB).
const MaxUploadBytes = 50 << 20

// Percent is a run's progress, 0..100: processed over the CRM's estimate,
// capped below 100 until the run has succeeded.
func Percent(r *db.ImportRun) *float64 {
	var p float64
	switch {
	case r.State == db.RunSucceeded:
		p = 100
	case r.TotalEstimate == nil || *r.TotalEstimate <= 0:
		return nil
	default:
		p = min(99.9, 100*float64(r.Processed)/float64(*r.TotalEstimate))
	}
	return &p
}

// importableIntegration returns the caller and an integration of their own
// organization that they may import into: OWNER and MEMBER only.
func (r *mutationResolver) importableIntegration(ctx context.Context, gid string) (*auth.Principal, *db.Integration, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, nil, err
	}
	id, err := parseTypedID(gid, typeIntegration)
	if err != nil {
		return nil, nil, err
	}
	if p.Role == auth.RoleSupport {
		return nil, nil, errForbidden("start imports (support may retry or cancel them)")
	}
	integ, err := r.Queries.IntegrationGetByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, nil, err
	}
	return p, integ, nil
}

// operableRun returns a run the caller may cancel or retry: OWNER and MEMBER
// in their organization, SUPPORT in any.
func (r *mutationResolver) operableRun(ctx context.Context, gid, what string) (*auth.Principal, *db.ImportRun, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, nil, err
	}
	id, err := parseTypedID(gid, typeImportRun)
	if err != nil {
		return nil, nil, err
	}
	run, err := r.Queries.ImportRunGetByIDAnyOrg(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !p.CanRead(run.OrgID) {
		return nil, nil, errNotFound()
	}
	return p, run, nil
}

func validIdempotencyKey(k *string) (*string, error) {
	if k == nil {
		return nil, nil
	}
	s := strings.TrimSpace(*k)
	if s == "" || len(s) > 200 || !utf8.ValidString(s) {
		return nil, errBadInput("idempotencyKey must be 1 to 200 characters")
	}
	return &s, nil
}
