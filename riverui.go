package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/resolvers"
)

// riverUIPrefix is where River UI is mounted (CONTRACT.md).
const riverUIPrefix = "/riverui"

// newRiverUI returns River UI behind SUPPORT-only HTTP basic auth: any user
// name, a SUPPORT API token as the password. Its background services start
// with the first authorised request and stop with ctx, so a process that
// never serves it (a test, a command) runs nothing extra.
func newRiverUI(ctx context.Context, client *river.Client[pgx.Tx], res *resolvers.Resolver, log *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    log.With("module", "riverui"),
		Prefix:    riverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating River UI: %w", err)
	}
	var start sync.Once
	var startErr error
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := supportFromBasicAuth(r, res)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="crmhub River UI (any user name, a SUPPORT token as password)", charset="UTF-8"`)
			http.Error(w, "River UI is for crmhub support: sign in with any user name and a SUPPORT API token as the password", http.StatusUnauthorized)
			return
		}
		start.Do(func() { startErr = h.Start(ctx) })
		if startErr != nil {
			log.ErrorContext(r.Context(), "River UI did not start", "err", startErr)
			http.Error(w, "River UI is unavailable", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}), nil
}

// supportFromBasicAuth authenticates the basic-auth password as an API token
// and accepts only SUPPORT ones.
func supportFromBasicAuth(r *http.Request, res *resolvers.Resolver) (*auth.Principal, bool) {
	_, password, ok := r.BasicAuth()
	if !ok || password == "" {
		return nil, false
	}
	p, err := res.Authenticate(r.Context(), "Bearer "+password)
	if err != nil {
		if !errors.Is(err, resolvers.ErrBadToken) {
			res.Log.ErrorContext(r.Context(), "River UI authentication failed", "err", err)
		}
		return nil, false
	}
	return p, p.Role == auth.RoleSupport
}
