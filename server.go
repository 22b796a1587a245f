// Command crmhub is the CRM integration hub for wedding vendors: a GraphQL
// backend-for-frontend that imports a vendor's whole client database from
// their CRM, keeps it in sync and streams import progress live.
//
// Read run and serve top to bottom to see the whole program start:
// config → pool → stores → River → GraphQL → HTTP, and shut down in reverse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/playground"
	"github.com/wedsync/crmhub/jobs"
	"github.com/wedsync/crmhub/resolvers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmhub:", err)
		os.Exit(1)
	}
}

const usage = `usage: crmhub <command> [flags]

commands:
  serve                              run the production server (config from the environment)
  dev                                database bootstrap, migrations, demo data and server (make run)
  migrate                            apply crmhub's and River's migrations; safe to run again
  org create --slug S --name N       create an organization; prints its id
  token create --org S --role OWNER|MEMBER [--name N]
  token create --role SUPPORT [--name N]
                                     print a new API token, alone, on stdout
  sim --addr HOST:PORT               the CRM simulator (Tave and HoneyBook) on its own
  rotate-key [--batch N]             re-seal CRM credentials under CRMHUB_SECRET_KEY (old keys in CRMHUB_OLD_SECRET_KEYS)
  dev-db-url                         print a PostgreSQL URL that answers, starting one if needed
`

// run dispatches a command. It returns instead of exiting so tests can run
// commands in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		cfg, err := loadConfig(getenv, "json")
		if err != nil {
			return err
		}
		if err := cfg.requireServeConfig(); err != nil {
			return err
		}
		log := slog.New(logHandler{newLogger(cfg.LogFormat, cfg.LogLevel).Handler()})
		return serve(ctx, cfg, log, serveOptions{})
	case "dev":
		return dev(ctx, getenv, stdout)
	case "migrate":
		return withPool(ctx, getenv, func(cfg *Config, log *slog.Logger, pool *pgxpool.Pool) error {
			return db.Migrate(ctx, pool, log)
		})
	case "org":
		return orgCommand(ctx, rest, getenv, stdout)
	case "token":
		return tokenCommand(ctx, rest, getenv, stdout)
	case "sim":
		return simCommand(ctx, rest, stderr)
	case "rotate-key":
		return rotateKeyCommand(ctx, rest, getenv, stdout)
	case "dev-db-url":
		return devDBURL(ctx, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// serveOptions are what dev adds to a plain serve.
type serveOptions struct {
	// introspection allows schema introspection and field suggestions for
	// every caller; without it only SUPPORT tokens get them (unless
	// CRMHUB_INTROSPECTION=on).
	introspection bool
	// mount adds routes (the simulator in dev).
	mount func(mux *http.ServeMux)
	// ready is called with the listening address once the server accepts
	// connections.
	ready func(addr string)
	// connectorFunc overrides how import connectors are built (tests tune
	// their HTTP retries); nil uses the real ones.
	connectorFunc jobs.ConnectorFunc
	// queryTracer sees every query of the pool (tests count them).
	queryTracer pgx.QueryTracer
	// gqlgenOnly renders client pages with gqlgen, not
	// resolvers.RenderClientPages (tests compare the two).
	gqlgenOnly bool
}

// app is the wired program: everything serve runs, without the listener, so
// tests drive the real handler.
type app struct {
	pool     *pgxpool.Pool
	hub      *db.Hub
	progress *db.ProgressHub
	river    *river.Client[pgx.Tx]
	live     *liveConns
	handler  http.Handler
	versions *db.VersionWatcher
	// drain, when called, tells running imports to hand their runs back to
	// the queue at their next page boundary.
	drain func()
}

// stopProgress stops the LISTEN hub and the progress fan-out; the pool
// closes after it.
func (a *app) stopProgress(ctx context.Context) error {
	err := a.hub.Stop(ctx)
	a.progress.Stop()
	return err
}

// close stops what newApp started and closes the pool.
func (a *app) close() {
	a.live.stop()
	_ = a.stopProgress(context.Background())
	a.pool.Close()
}

// newApp wires the program in one readable sequence:
// config → pool → stores → progress hub → River → GraphQL → HTTP.
func newApp(ctx context.Context, cfg *Config, log *slog.Logger, opts serveOptions) (_ *app, err error) {
	// Pool.
	pool, err := openPool(ctx, cfg, opts.queryTracer)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := db.CheckMigrated(ctx, pool); err != nil {
		return nil, err
	}

	// Stores.
	sealer, err := auth.NewSealer(cfg.SecretKey, cfg.OldSecretKeys...)
	if err != nil {
		return nil, err
	}
	queries := db.New(pool)

	// LISTEN hub: one connection of its own (not from the pool) per node,
	// fanning committed run changes out to this node's subscribers and data
	// versions and token revocations out to its caches. It starts once every
	// handler is registered (below, with the read cache).
	hub, err := db.NewHub(db.HubConfig{
		ConnConfig: pool.Config().ConnConfig, Logger: log.With("module", "hub"),
		Channels: []string{db.ProgressChannel, db.DataVersionChannel, db.TokenRevokedChannel},
	})
	if err != nil {
		return nil, err
	}
	progress := db.NewProgressHub(queries, log.With("module", "progress"))
	if _, err := hub.Handle(db.ProgressChannel, progress); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = hub.Stop(ctx)
			progress.Stop()
		}
	}()

	// River.
	draining := make(chan struct{})
	connectors := opts.connectorFunc
	if connectors == nil {
		connectors = jobs.NewConnector(jobs.ConnectorOptions{RequestsPerMinute: cfg.CRMRequestsPerMinute})
	}
	riverClient, err := jobs.NewClient(pool, jobs.Config{
		MaxWorkers: cfg.MaxWorkers, Work: cfg.MaxWorkers > 0, Sealer: sealer, Slice: cfg.ImportSlice,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter, ConnectorFunc: connectors, Logger: log,
		Draining: draining,
	})
	if err != nil {
		return nil, err
	}
	imports := &jobs.Imports{Pool: pool, Queries: queries, River: riverClient}

	// Read cache: data versions followed over LISTEN, pages and principals
	// in go-cache.
	var cache *resolvers.Cache
	versions, err := db.NewVersionWatcher(db.VersionWatcherConfig{
		Pool: pool, Hub: hub, Logger: log,
		OnTokenRevokedFunc: func(int64) { cache.ForgetPrincipals() },
	})
	if err != nil {
		return nil, err
	}
	cache = resolvers.NewCache(resolvers.CacheConfig{
		Disabled: cfg.CacheOff, TTL: cfg.CacheTTL, MaxItems: cfg.CacheMaxItems, MaxAnswerBytes: cfg.CacheMaxAnswerBytes, PrincipalTTL: cfg.PrincipalCacheTTL,
	}, versions)
	hub.Start(ctx)

	// GraphQL.
	res := &resolvers.Resolver{Log: log, Pool: pool, Queries: queries, Sealer: sealer, Imports: imports, Progress: progress, Cache: cache}
	pages := resolvers.NewRenderClientPages(opts.gqlgenOnly)
	m := newMetrics(pool, append(cache.Collectors(), pages.Collectors()...)...)
	// Subscribers join a running execution only while the hub listens: a
	// stream's last payload is current only if no notification was lost.
	live := newLiveConns(cfg, m, func() bool { return hub.State().Connected })
	defer func() {
		if err != nil {
			live.stop()
		}
	}()
	m.watchProgress(hub, progress, live)
	gql := newGraphQLHandler(cfg, res, m, live, opts.introspection, pages)

	// HTTP.
	mux := http.NewServeMux()
	api := withTimeout(cfg.RequestTimeout, resolvers.WithClientHints(hardenHTTP(cfg, res, res.CacheAnswers(res.WithLoaders(gql)))))
	mux.Handle("/graphql", m.instrument("/graphql", live.count(api)))
	riverUI, err := newRiverUI(ctx, riverClient, res, log)
	if err != nil {
		return nil, err
	}
	mux.Handle(riverUIPrefix+"/", m.instrument(riverUIPrefix, riverUI))
	playground.Mount(mux, "/graphql")
	mux.HandleFunc("GET /livez", livez)
	mux.Handle("GET /readyz", readyz(pool, hub))
	mux.Handle("GET /metrics", m.handler())
	if opts.mount != nil {
		opts.mount(mux)
	}
	var drainOnce sync.Once
	return &app{
		pool: pool, hub: hub, progress: progress, river: riverClient, live: live,
		handler: withRequestID(log, mux), versions: versions,
		drain: func() { drainOnce.Do(func() { close(draining) }) },
	}, nil
}

// serve runs the server until ctx is cancelled, then shuts down in reverse
// order: subscriptions closed → HTTP drain → River stop → progress hub stop →
// pool close.
func serve(ctx context.Context, cfg *Config, log *slog.Logger, opts serveOptions) error {
	a, err := newApp(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	defer a.close()

	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: subscriptions (WebSocket, SSE) stay open for as
		// long as an import runs; withTimeout bounds ordinary requests.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", cfg.Addr, err)
	}
	// River starts once the address is ours, so a second copy of the server
	// on a busy port fails before it works any job. Its context is not
	// cancelled by the signal: cancelling it would cancel running jobs
	// mid-page; shutdown stops River gracefully instead.
	working := cfg.MaxWorkers > 0
	if working {
		if err := a.river.Start(context.WithoutCancel(ctx)); err != nil {
			ln.Close()
			return fmt.Errorf("error starting River: %w", err)
		}
	}
	log.Info("crmhub serving", "addr", ln.Addr().String())
	if opts.ready != nil {
		opts.ready(ln.Addr().String())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		log.Error("HTTP server failed", "err", err)
	case <-ctx.Done():
		log.Info("shutting down")
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	// Imports hear of the shutdown first, so they reach a page boundary
	// while HTTP drains. Subscriptions never end on their own: close
	// WebSockets with 1012 (service restart) and cut SSE streams, so clients
	// reconnect to another node and get the current snapshot there.
	a.drain()
	a.live.shutdown()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("error draining HTTP: %w", err))
		_ = srv.Close()
	}
	// River: stop fetching, let running imports commit their page and hand
	// the run back to the queue, and cancel what is left at the deadline —
	// what was committed is safe either way.
	if err := a.river.Stop(shutdownCtx); working && err != nil {
		errs = append(errs, fmt.Errorf("error stopping River gracefully: %w", err))
		cancelCtx, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelStop()
		if err := a.river.StopAndCancel(cancelCtx); err != nil {
			errs = append(errs, fmt.Errorf("error stopping River: %w", err))
		}
	}
	if err := a.stopProgress(shutdownCtx); err != nil {
		errs = append(errs, err)
	}
	log.Info("stopped")
	return errors.Join(errs...)
}

// withTimeout bounds ordinary requests; subscriptions (WebSocket upgrades
// and SSE streams) are long-lived by design and keep their own liveness
// checks.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func openPool(ctx context.Context, cfg *Config, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	if tracer != nil {
		pcfg.ConnConfig.Tracer = tracer
	}
	if pcfg.MaxConns < cfg.DBMaxConns {
		pcfg.MaxConns = cfg.DBMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("error opening database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to the database (DATABASE_URL): %w", err)
	}
	return pool, nil
}

// withPool runs fn with config, a text logger and a pool for the commands
// that only need the database.
func withPool(ctx context.Context, getenv func(string) string, fn func(*Config, *slog.Logger, *pgxpool.Pool) error) error {
	cfg, err := loadConfig(getenv, "text")
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set: set it to a PostgreSQL URL (or run `crmhub dev-db-url` for a local one)")
	}
	log := newLogger(cfg.LogFormat, cfg.LogLevel)
	pool, err := openPool(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(cfg, log, pool)
}

func orgCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: crmhub org create --slug S --name N")
	}
	fs := flag.NewFlagSet("org create", flag.ContinueOnError)
	slug := fs.String("slug", "", "the organization's URL-safe short name (a-z, 0-9, -)")
	name := fs.String("name", "", "the organization's display name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *slug == "" || *name == "" {
		return errors.New("usage: crmhub org create --slug S --name N (both are required)")
	}
	return withPool(ctx, getenv, func(_ *Config, _ *slog.Logger, pool *pgxpool.Pool) error {
		o, err := db.New(pool).OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: *slug, Name: *name})
		if errors.Is(err, db.ErrConflict) {
			return fmt.Errorf("an organization with slug %q exists already", *slug)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, resolvers.OrganizationGlobalID(o.ID))
		return nil
	})
}

func tokenCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: crmhub token create --org S --role OWNER|MEMBER [--name N] | --role SUPPORT [--name N]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	orgSlug := fs.String("org", "", "the organization's slug (not for SUPPORT)")
	roleFlag := fs.String("role", "", "OWNER, MEMBER or SUPPORT")
	name := fs.String("name", "", "a label for the token")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	role := auth.Role(*roleFlag)
	switch {
	case !role.Valid():
		return errors.New("--role must be OWNER, MEMBER or SUPPORT")
	case role == auth.RoleSupport && *orgSlug != "":
		return errors.New("a SUPPORT token belongs to no organization: leave out --org")
	case role != auth.RoleSupport && *orgSlug == "":
		return errors.New("--org is required for OWNER and MEMBER tokens")
	}
	return withPool(ctx, getenv, func(_ *Config, _ *slog.Logger, pool *pgxpool.Pool) error {
		q := db.New(pool)
		var orgID *int64
		if role != auth.RoleSupport {
			o, err := q.OrganizationGetBySlug(ctx, *orgSlug)
			if errors.Is(err, db.ErrNotFound) {
				return fmt.Errorf("no organization with slug %q", *orgSlug)
			}
			if err != nil {
				return err
			}
			orgID = &o.ID
		}
		label := *name
		if label == "" {
			label = string(role) + " token"
		}
		token, _, err := resolvers.CreateToken(ctx, q, orgID, label, role)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		return nil
	})
}
