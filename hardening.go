package main

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql/handler"

	"github.com/wedsync/crmhub/resolvers"
)

// hardenGraphQL adds the query limits, the per-request introspection and
// suggestion policy, and the support audit to srv. It must be called after
// the APQ extension is added: the limits read the query text APQ restores.
func hardenGraphQL(srv *handler.Server, cfg *Config, r *resolvers.Resolver, introspection bool) {
	l := cfg.Limits
	srv.SetParserTokenLimit(l.MaxQueryTokens)
	srv.Use(resolvers.QueryLimits{
		MaxComplexity: l.MaxComplexity, MaxDepth: l.MaxDepth, MaxAliases: l.MaxAliases,
		MaxFieldRepeats: l.MaxFieldRepeats, MaxTokens: l.MaxQueryTokens,
	}.WithDefaults())
	policy := resolvers.IntrospectionPolicy{All: introspection || l.Introspection}
	srv.Use(policy)
	srv.SetErrorPresenter(policy.HideSuggestions(resolvers.ErrorPresenter(r.Log)))
	srv.Use(&resolvers.Audit{Queries: r.Queries, RequestIDFunc: requestIDFrom})
}

// hardenHTTP wraps the GraphQL handler in the transport limits (before
// anything else: they are free), authentication, and the rate limit (which
// needs to know the caller).
func hardenHTTP(cfg *Config, r *resolvers.Resolver, gql http.Handler) http.Handler {
	l := cfg.Limits
	next := gql
	if l.RateLimitPerMinute > 0 {
		next = newRateLimiter(l.RateLimitPerMinute, l.RateLimitBurst, l.AnonRateLimitPerMinute, l.AnonRateLimitBurst).wrap(next)
	}
	limits := transportLimits{maxJSONBody: int64(l.MaxBodyBytes), maxUploadBody: MaxUploadBodyDefault}
	return limits.wrap(r.AuthMiddleware(next))
}

// requestIDFrom is the id withRequestID gave the request of ctx.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
