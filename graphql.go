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
func newGraphQLHandler(cfg *Config, r *resolvers.Resolver, m *metrics, live *liveConns, introspection bool, pages *resolvers.RenderClientPages) http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: r}))

	// WebSockets: crmhub's own transport (live_conn.go), which shares one
	// execution among subscribers of the same operation and view, pings
	// every connection from one ticker and checks allowed origins.
	srv.AddTransport(liveTransport{
		l: live, log: r.Log,
		initFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, error) {
			// A token in connection_init wins; otherwise the upgrade
			// request's header (already in ctx) stands.
			if header := payload.Authorization(); header != "" {
				p, err := r.Authenticate(ctx, header)
				if err != nil {
					return ctx, err
				}
				ctx = auth.WithPrincipal(ctx, p)
			}
			if auth.PrincipalFrom(ctx) == nil {
				return ctx, resolvers.ErrBadToken
			}
			return ctx, nil
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
	// The one-pass renderer of client pages comes before the audit, so it
	// is the outer field middleware (gqlgen makes the first one outermost):
	// the audit sees the resolver's page, and this renders what the audit
	// returns.
	srv.Use(pages)
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
