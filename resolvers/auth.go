package resolvers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
)

// ErrBadToken is returned for a token that is malformed, unknown or revoked.
var ErrBadToken = errors.New("invalid or revoked API token")

type authFailedKey struct{}

// Authenticate resolves an Authorization header value to a principal.
func (r *Resolver) Authenticate(ctx context.Context, header string) (*auth.Principal, error) {
	token, err := auth.ParseBearer(header)
	if err != nil {
		return nil, ErrBadToken
	}
	hash := auth.HashToken(token)
	if p, ok := r.Cache.cachedPrincipal(hash); ok {
		return p, nil
	}
	t, err := r.Queries.APITokenGetActiveByHash(ctx, hash)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("error authenticating: %w", err)
	}
	if err := r.Queries.APITokenTouch(ctx, t.ID); err != nil {
		r.Log.WarnContext(ctx, "could not record token use", "err", err)
	}
	p := &auth.Principal{TokenID: t.ID, TokenName: t.Name, Role: auth.Role(t.Role)}
	if t.OrgID != nil {
		p.OrgID = *t.OrgID
	}
	r.Cache.storePrincipal(hash, p)
	return p, nil
}

// AuthMiddleware puts the caller's principal in the request context. A
// request without a token, or with a bad one, goes on anonymously so that
// GraphQL can answer with a proper UNAUTHENTICATED error; WebSocket
// upgrades authenticate in connection_init instead.
func (r *Resolver) AuthMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		header := req.Header.Get("Authorization")
		if header == "" {
			next.ServeHTTP(w, req)
			return
		}
		p, err := r.Authenticate(req.Context(), header)
		ctx := req.Context()
		switch {
		case err == nil:
			ctx = auth.WithPrincipal(ctx, p)
		case errors.Is(err, ErrBadToken):
			ctx = context.WithValue(ctx, authFailedKey{}, true)
		default:
			r.Log.ErrorContext(ctx, "authentication failed", "err", err)
			http.Error(w, `{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}`, http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, req.WithContext(ctx))
	})
}

// RequireAuth answers every operation of an anonymous caller with
// UNAUTHENTICATED before any resolver runs.
func RequireAuth(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if auth.PrincipalFrom(ctx) == nil {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
			Message:    errUnauthenticated().Error(),
			Extensions: map[string]any{"code": CodeUnauthenticated},
		}}})
	}
	return next(ctx)
}

// principal returns the caller or UNAUTHENTICATED.
func principal(ctx context.Context) (*auth.Principal, error) {
	p := auth.PrincipalFrom(ctx)
	if p == nil {
		return nil, errUnauthenticated()
	}
	return p, nil
}

// readableOrg returns the caller and checks they may read orgID; an
// organization they may not read answers like a missing one.
func readableOrg(ctx context.Context, orgID int64) (*auth.Principal, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.CanRead(orgID) {
		return nil, errNotFound()
	}
	return p, nil
}

// managedOrg returns the caller's organization id when the caller is its
// OWNER.
func managedOrg(ctx context.Context, what string) (int64, error) {
	p, err := principal(ctx)
	if err != nil {
		return 0, err
	}
	if p.Role != auth.RoleOwner {
		return 0, errForbidden(what)
	}
	return p.OrgID, nil
}
