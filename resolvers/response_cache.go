package resolvers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wedsync/crmhub/auth"
)

// The response cache keeps whole rendered answers to the read path's
// queries: a phone that pulls to refresh, or a hundred phones of one studio
// that open the same client list, get the answer without a resolver or
// a JSON encoder running. It lives in the read cache (same TTL, same item
// cap, same switch) and, like every entry there, is keyed by the
// organization's data version: a committed change makes every old answer
// unreachable at once, and a node that cannot know the version (its LISTEN
// connection is down) bypasses it.
//
// Only an answer made entirely of data the data version covers may be kept:
// the organization's clients and the organization's fixed fields. Anything
// else (viewer, integrations, import runs, tokens, node) changes without a
// version bump, so an operation that selects it is never cached. SUPPORT
// reads are never cached either: each one must reach the audit log.

// versionedFields are the fields whose values change only with the data
// version, by "Type.field". Every Client field is one except integration,
// whose name and state change without a bump.
var versionedFields = func() map[string]bool {
	m := map[string]bool{
		"Query.organization": true,
		// An organization's id, slug and name never change once made.
		"Organization.id": true, "Organization.name": true, "Organization.slug": true,
		"Organization.createdAt": true, "Organization.clients": true,
		"ClientConnection.edges": true, "ClientConnection.nodes": true, "ClientConnection.pageInfo": true,
		"ClientConnection.totalCount": true, "ClientConnection.pageSize": true, "ClientConnection.network": true,
		"ClientEdge.cursor": true, "ClientEdge.node": true,
		"PageInfo.hasNextPage": true, "PageInfo.hasPreviousPage": true,
		"PageInfo.startCursor": true, "PageInfo.endCursor": true,
	}
	for _, f := range []string{
		"id", "externalId", "firstName", "lastName", "maidenName", "partnerFirstName", "partnerLastName",
		"displayName", "email", "phone", "eventDate", "venue", "jobType", "stage", "leadSource",
		"bookingValue", "guestCount", "sourceCreatedAt", "sourceUpdatedAt", "createdAt", "updatedAt", "deletedAt",
	} {
		m["Client."+f] = true
	}
	m["Money.amountMinor"], m["Money.currency"] = true, true
	return m
}()

// versioned reports whether every field under set is covered by the data
// version. Fragments are followed; @skip and @include are ignored, which
// only errs on the side of not caching.
func versioned(set ast.SelectionSet, depth int) bool {
	if depth > 64 {
		return false
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__typename" {
				continue
			}
			if s.ObjectDefinition == nil || !versionedFields[s.ObjectDefinition.Name+"."+s.Name] {
				return false
			}
			if !versioned(s.SelectionSet, depth+1) {
				return false
			}
		case *ast.InlineFragment:
			if !versioned(s.SelectionSet, depth+1) {
				return false
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || !versioned(s.Definition.SelectionSet, depth+1) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// cachedResponse is a kept answer.
type cachedResponse struct {
	data       json.RawMessage
	extensions map[string]any
	// usedHints says the page size came from the client hints, so the
	// answer must say Vary: ECT, Downlink, RTT, Save-Data again.
	usedHints bool
}

// CacheResponses is an operation middleware (gqlgen AroundOperations) that
// answers a query from the response cache when it can and keeps what it
// computes when it may. Use it after RequireAuth, so the caller is known.
func (r *Resolver) CacheResponses(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	p := auth.PrincipalFrom(ctx)
	if p == nil || p.Role == auth.RoleSupport || p.OrgID == 0 ||
		oc.Operation == nil || oc.Operation.Operation != ast.Query || !versioned(oc.Operation.SelectionSet, 0) {
		return next(ctx)
	}
	v, ok := r.Cache.version(ctx, "response", p.OrgID)
	if !ok {
		return next(ctx)
	}
	key, ok := responseKey(ctx, oc, p, v)
	if !ok {
		return next(ctx)
	}
	if e, hit := r.Cache.get("response", key); hit {
		c := e.(*cachedResponse)
		if c.usedHints {
			markHintsUsed(ctx)
		}
		// Interceptors outside this one may add to the extensions.
		return graphql.OneShot(&graphql.Response{Data: c.data, Extensions: maps.Clone(c.extensions)})
	}
	h := next(ctx)
	done := false
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		// A query answers once; keep only a whole answer without errors
		// (an error may be passing: a timeout, a cancelled request).
		if !done && resp != nil && len(resp.Errors) == 0 && len(resp.Data) > 0 && resp.HasNext == nil {
			r.Cache.set(key, &cachedResponse{
				data: resp.Data, extensions: maps.Clone(resp.Extensions), usedHints: hintsUsed(ctx),
			})
		}
		done = true
		return resp
	}
}

// responseKey spells out everything the answer depends on: the caller's
// organization and role, the data version, the network the page size may
// fall back on, and the operation with its variables.
func responseKey(ctx context.Context, oc *graphql.OperationContext, p *auth.Principal, v int64) (string, bool) {
	vars, err := json.Marshal(oc.Variables) // map keys come out sorted
	if err != nil {
		return "", false
	}
	h := sha256.New()
	h.Write([]byte(oc.OperationName))
	h.Write([]byte{0})
	h.Write([]byte(oc.RawQuery))
	h.Write([]byte{0})
	h.Write(vars)
	network := "-"
	if hs, ok := ctx.Value(hintKey{}).(*hints); ok && hs.present {
		network = string(hs.network)
	}
	return "r|" + strconv.FormatInt(p.OrgID, 10) + "|" + strconv.FormatInt(v, 10) + "|" + string(p.Role) + "|" +
		network + "|" + string(h.Sum(nil)), true
}
