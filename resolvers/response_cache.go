package resolvers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wedsync/crmhub/auth"
)

// The response cache keeps whole HTTP answers to the read path's queries: a
// phone that pulls to refresh, or a hundred phones of one studio that open
// the same client list, get the answer without any GraphQL work. It lives
// in the read cache (same TTL, same item cap, same switch) and, like every
// entry there, is keyed by the organization's data version: a committed change makes every old answer
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
// version (ok), and whether any field besides __typename is there at all
// (reads): an answer made of __typename alone costs less to compute than to
// keep. Fragments are followed; @skip and @include are ignored, which only
// errs on the side of not caching.
func versioned(set ast.SelectionSet, depth int) (ok, reads bool) {
	if depth > 64 {
		return false, false
	}
	for _, sel := range set {
		var sub ast.SelectionSet
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__typename" {
				continue
			}
			if s.ObjectDefinition == nil || !versionedFields[s.ObjectDefinition.Name+"."+s.Name] {
				return false, false
			}
			reads = true
			sub = s.SelectionSet
		case *ast.InlineFragment:
			sub = s.SelectionSet
		case *ast.FragmentSpread:
			if s.Definition == nil {
				return false, false
			}
			sub = s.Definition.SelectionSet
		default:
			return false, false
		}
		subOK, subReads := versioned(sub, depth+1)
		if !subOK {
			return false, false
		}
		reads = reads || subReads
	}
	return true, reads
}

// cachedAnswer is a kept HTTP answer.
type cachedAnswer struct {
	body        []byte
	contentType string
	// usedHints says the page size came from the client hints, so the
	// answer must say Vary: ECT, Downlink, RTT, Save-Data again.
	usedHints bool
}

// maxCachedAnswer bounds the size of one kept answer.
const maxCachedAnswer = 1 << 20

// answerSlot is where MarkCacheable tells CacheAnswers about the operation
// it let through: candidate once the operation qualifies (the answer is
// then copied as it is written), cacheable once it answered without errors.
type answerSlot struct{ candidate, cacheable bool }

type answerSlotKey struct{}

// CacheAnswers keeps whole HTTP answers to GraphQL queries (POST with a
// JSON body, or GET) and answers a repeat from memory, before any GraphQL
// work: no decoding, no validation, no resolver, no encoder. It keeps only
// what MarkCacheable, inside gqlgen, found to be a query over versioned
// fields that answered without errors. Use it after authentication (the
// caller is part of the key) and WithClientHints (so is the network).
func (r *Resolver) CacheAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		p := auth.PrincipalFrom(ctx)
		if p == nil || p.Role == auth.RoleSupport || p.OrgID == 0 || !answerCacheable(req) {
			next.ServeHTTP(w, req)
			return
		}
		v, ok := r.Cache.version(ctx, "response", p.OrgID)
		if !ok {
			next.ServeHTTP(w, req)
			return
		}
		request := []byte(req.URL.RawQuery)
		if req.Method == http.MethodPost {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				// Too large, or cut off: gqlgen answers as it would have.
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
				next.ServeHTTP(w, req)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			request = body
		}
		key := answerKey(ctx, req, p, v, request)
		if e, hit := r.Cache.get("response", key); hit {
			a := e.(*cachedAnswer)
			if a.usedHints {
				markHintsUsed(ctx)
			}
			h := w.Header()
			h.Set("Content-Type", a.contentType)
			h.Set("Content-Length", strconv.Itoa(len(a.body)))
			_, _ = w.Write(a.body)
			return
		}
		slot := &answerSlot{}
		rec := &answerRecorder{ResponseWriter: w, status: http.StatusOK, slot: slot}
		next.ServeHTTP(rec, req.WithContext(context.WithValue(ctx, answerSlotKey{}, slot)))
		if slot.cacheable && rec.status == http.StatusOK && !rec.tooBig {
			r.Cache.setAnswer(key, &cachedAnswer{
				body: rec.body, contentType: rec.Header().Get("Content-Type"), usedHints: hintsUsed(ctx),
			})
		}
	})
}

// answerCacheable tells whether req is a GraphQL query CacheAnswers may
// look up: a JSON POST or a GET, not a WebSocket, not an SSE stream.
func answerCacheable(req *http.Request) bool {
	if req.Header.Get("Upgrade") != "" || strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
		return false
	}
	switch req.Method {
	case http.MethodGet:
		return true
	case http.MethodPost:
		mediaType, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
		return err == nil && mediaType == "application/json"
	}
	return false
}

// answerKey spells out everything the answer depends on: the caller's
// organization and role, the data version, the network the page size may
// fall back on, and a hash of the request (method, Accept, which picks the
// Content-Type, and the body or the query string).
func answerKey(ctx context.Context, req *http.Request, p *auth.Principal, v int64, request []byte) string {
	h := sha256.New()
	h.Write([]byte(req.Method))
	h.Write([]byte{0})
	h.Write([]byte(req.Header.Get("Accept")))
	h.Write([]byte{0})
	h.Write(request)
	network := "-"
	if n, ok := hintedNetwork(ctx); ok {
		network = string(n)
	}
	return "r|" + strconv.FormatInt(p.OrgID, 10) + "|" + strconv.FormatInt(v, 10) + "|" + string(p.Role) + "|" +
		network + "|" + string(h.Sum(nil))
}

// answerRecorder passes an answer through and keeps a copy of a
// candidate's.
type answerRecorder struct {
	http.ResponseWriter
	slot   *answerSlot
	status int
	body   []byte
	tooBig bool
}

func (a *answerRecorder) WriteHeader(code int) {
	a.status = code
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerRecorder) Write(b []byte) (int, error) {
	if a.slot.candidate && !a.tooBig {
		if len(a.body)+len(b) > maxCachedAnswer {
			a.tooBig, a.body = true, nil
		} else {
			a.body = append(a.body, b...)
		}
	}
	return a.ResponseWriter.Write(b)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// MarkCacheable is an operation middleware (gqlgen AroundOperations) that
// tells CacheAnswers whether the answer it is about to send may be kept: a
// query, over versioned fields only, by a caller whose reads are not
// audited, answered whole and without errors (an error may be passing: a
// timeout, a cancelled request).
func MarkCacheable(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	slot, _ := ctx.Value(answerSlotKey{}).(*answerSlot)
	oc := graphql.GetOperationContext(ctx)
	p := auth.PrincipalFrom(ctx)
	if slot == nil || p == nil || p.Role == auth.RoleSupport || oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return next(ctx)
	}
	if ok, reads := versioned(oc.Operation.SelectionSet, 0); !ok || !reads {
		return next(ctx)
	}
	slot.candidate = true
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		slot.cacheable = resp != nil && len(resp.Errors) == 0 && len(resp.Data) > 0 && resp.HasNext == nil
		return resp
	}
}
