package resolvers

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/model"
)

// Audit actions, as AuditAction in graph/audit.graphqls names them.
const (
	AuditReadClients       = "READ_CLIENTS"
	AuditReadImportRejects = "READ_IMPORT_REJECTS"
	AuditCancelImport      = "CANCEL_IMPORT"
	AuditRetryImport       = "RETRY_IMPORT"
)

// Audit writes what SUPPORT tokens do in an organization to audit_log:
// reads of client data (a client, a list of clients, an import's rejected
// records) and cancelled or retried imports. It looks at what resolvers
// return rather than at which resolver ran, so a new field that returns
// clients is audited without anyone remembering to. It writes one row per
// request, organization and action, before the data leaves the server; if
// the row cannot be written the field fails, so nothing is read unaudited.
type Audit struct {
	// Queries writes the rows.
	Queries *db.Queries
	// RequestIDFunc returns the id of the request of ctx, stored with the
	// row; nil stores none.
	RequestIDFunc func(ctx context.Context) string
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.FieldInterceptor
} = (*Audit)(nil)

// ExtensionName names the extension in gqlgen's list.
func (*Audit) ExtensionName() string { return "Audit" }

// Validate accepts any schema.
func (*Audit) Validate(graphql.ExecutableSchema) error { return nil }

type auditKey struct{}

// auditSeen is one request's record of the rows written, so a page of 100
// clients writes one row, not 100.
type auditSeen struct {
	mu   sync.Mutex
	seen map[auditSeenKey]bool
}

type auditSeenKey struct {
	orgID  int64
	action string
	target string
}

// InterceptOperation gives each SUPPORT operation its record of rows
// written.
func (a *Audit) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if p := auth.PrincipalFrom(ctx); p != nil && p.Role == auth.RoleSupport {
		ctx = context.WithValue(ctx, auditKey{}, &auditSeen{seen: map[auditSeenKey]bool{}})
	}
	return next(ctx)
}

// InterceptField audits what a SUPPORT token's field returned.
func (a *Audit) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	seen, _ := ctx.Value(auditKey{}).(*auditSeen)
	if seen == nil {
		return next(ctx)
	}
	res, err := next(ctx)
	if err != nil || res == nil {
		return res, err
	}
	orgID, action, target := auditedAction(ctx, res)
	if action == "" || orgID == 0 {
		return res, nil
	}
	key := auditSeenKey{orgID: orgID, action: action}
	if action == AuditCancelImport || action == AuditRetryImport {
		key.target = target // Every change is its own row.
	}
	seen.mu.Lock()
	done := seen.seen[key]
	seen.seen[key] = true
	seen.mu.Unlock()
	if done {
		return res, nil
	}
	p := auth.PrincipalFrom(ctx)
	params := &db.AuditCreateParams{
		OrgID: orgID, ActorTokenID: p.TokenID, ActorName: p.TokenName, ActorRole: string(p.Role), Action: action,
	}
	if target != "" {
		params.TargetID = &target
	}
	if a.RequestIDFunc != nil {
		if id := a.RequestIDFunc(ctx); id != "" {
			params.RequestID = &id
		}
	}
	// The audit row is written even if the client has gone: the data may
	// already be on its way.
	if err := a.Queries.AuditCreate(context.WithoutCancel(ctx), params); err != nil {
		seen.mu.Lock()
		delete(seen.seen, key)
		seen.mu.Unlock()
		return nil, err
	}
	return res, nil
}

// auditedAction says what a resolved value means for the audit log: the
// organization, the action and the target's global id; action is "" for
// values that need no entry.
func auditedAction(ctx context.Context, res any) (orgID int64, action, target string) {
	switch v := res.(type) {
	case *db.Client:
		return v.OrgID, AuditReadClients, globalID(typeClient, v.ID)
	case []*db.Client:
		if len(v) > 0 {
			return v[0].OrgID, AuditReadClients, ""
		}
	case *model.ClientConnection:
		if len(v.Nodes) > 0 {
			return v.Nodes[0].OrgID, AuditReadClients, ""
		}
		if o := parentResult[*db.Organization](ctx); o != nil {
			return o.ID, AuditReadClients, ""
		}
	case *model.ImportRejectConnection:
		if run := parentResult[*db.ImportRun](ctx); run != nil {
			return run.OrgID, AuditReadImportRejects, globalID(typeImportRun, run.ID)
		}
	case *model.CancelImportPayload:
		if v.Run != nil {
			return v.Run.OrgID, AuditCancelImport, globalID(typeImportRun, v.Run.ID)
		}
	case *model.StartImportPayload:
		if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Field.Name == "retryImport" && v.Run != nil {
			return v.Run.OrgID, AuditRetryImport, globalID(typeImportRun, v.Run.ID)
		}
	}
	return 0, "", ""
}

// parentResult is the nearest enclosing field's value of type T: the
// object a field was resolved on.
func parentResult[T any](ctx context.Context) T {
	var zero T
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return zero
	}
	for p := fc.Parent; p != nil; p = p.Parent {
		switch v := p.Result.(type) {
		case T:
			return v
		case *T: // A list element's context holds a pointer to it.
			if v != nil {
				return *v
			}
		}
	}
	return zero
}
