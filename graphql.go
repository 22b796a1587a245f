package main

import (
	"context"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	gocache "github.com/patrickmn/go-cache"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/graph"
	"github.com/wedsync/crmhub/resolvers"
)

// Limits of the GraphQL endpoint.
const (
	// queryCacheSize is how many parsed and validated queries are kept.
	queryCacheSize = 1000
	// maxUploadSize bounds a multipart import file.
	maxUploadSize = 50 << 20
	// maxMemoryUpload is how much of an upload is held in memory before it
	// spills to a temporary file.
	maxMemoryUpload = 8 << 20
)

// newGraphQLHandler builds the GraphQL server with explicit transports.
// SSE comes before POST so that a POST asking for text/event-stream is a
// subscription.
func newGraphQLHandler(cfg *Config, r *resolvers.Resolver, m *metrics, live *liveConns, introspection bool) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: r}))

	srv.AddTransport(transport.Websocket{
		// live pings every connection at the WebSocket level (both
		// subprotocols) and closes one that does not answer: a phone that
		// left the venue WiFi is cleaned up within KeepAliveInterval +
		// KeepAliveTimeout. Allowed origins are checked there too.
		Implementation: live,
		// The legacy graphql-ws subprotocol expects "ka" messages.
		KeepAlivePingInterval: cfg.KeepAliveInterval,
		InitTimeout:           10 * time.Second,
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			// A token in connection_init wins; otherwise the upgrade
			// request's header (already in ctx) stands.
			if header := payload.Authorization(); header != "" {
				p, err := r.Authenticate(ctx, header)
				if err != nil {
					return forbidden(ctx), nil, err
				}
				ctx = auth.WithPrincipal(ctx, p)
			}
			if auth.PrincipalFrom(ctx) == nil {
				return forbidden(ctx), nil, resolvers.ErrBadToken
			}
			return ctx, nil, nil
		},
	})
	srv.AddTransport(transport.SSE{KeepAlivePingInterval: cfg.KeepAliveInterval})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(jsonPOST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: maxUploadSize, MaxMemory: maxMemoryUpload})

	srv.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	srv.SetErrorPresenter(resolvers.ErrorPresenter(r.Log))
	srv.Use(extension.AutomaticPersistedQuery{Cache: newAPQCache()})
	// Query limits, the introspection policy (which wraps the error
	// presenter) and the support audit: see hardening.go.
	hardenGraphQL(srv, cfg, r, introspection)
	srv.Use(gqlExtension{m: m})
	srv.AroundOperations(resolvers.RequireAuth)
	// Tells the response cache (resolvers.CacheAnswers, in front of this
	// handler) which answers it may keep.
	srv.AroundOperations(resolvers.MarkCacheable)
	return srv
}

// forbidden makes gqlgen close a WebSocket whose connection_init carries no
// valid token with 4403 Forbidden, as graphql-transport-ws specifies
// (gqlgen's default is 1000, which clients would take as a normal end).
func forbidden(ctx context.Context) context.Context {
	return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, closeForbidden), "Forbidden")
}

// apqCache keeps persisted queries in go-cache: mobile clients send a hash
// instead of the query text after the first request.
type apqCache struct{ c *gocache.Cache }

func newAPQCache() *apqCache {
	return &apqCache{c: gocache.New(24*time.Hour, 10*time.Minute)}
}

func (a *apqCache) Get(_ context.Context, key string) (string, bool) {
	v, ok := a.c.Get(key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

func (a *apqCache) Add(_ context.Context, key, value string) {
	a.c.SetDefault(key, value)
}

var _ graphql.Cache[string] = (*apqCache)(nil)
