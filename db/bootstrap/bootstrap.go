package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// Source says where the URL that Ensure returned comes from.
type Source int

const (
	// SourceEnv is the DATABASE_URL the caller passed in Config.DatabaseURL.
	SourceEnv Source = iota + 1

	// SourceLocal is the PostgreSQL at Config.ProbeAddr.
	SourceLocal

	// SourcePrivate is the private cluster under Config.DataDir.
	SourcePrivate
)

// String returns the source's name as it appears in logs.
func (s Source) String() string {
	switch s {
	case SourceEnv:
		return "env"
	case SourceLocal:
		return "local"
	case SourcePrivate:
		return "private"
	default:
		return "Source(" + strconv.Itoa(int(s)) + ")"
	}
}

// Result is the database Ensure found or started.
type Result struct {
	// URL is a PostgreSQL URL that answered, to the database Config.Database
	// unless it is the caller's own DATABASE_URL.
	URL string

	// Source says which of the three ways produced URL.
	Source Source

	// DataDir is the private cluster's data directory as an absolute path:
	// Config.DataDir, or the directory under the postgres user's home that is
	// used when the postgres user cannot reach Config.DataDir. It is empty
	// unless Source is SourcePrivate.
	DataDir string

	// Started is true when this call initialized or started the private
	// cluster, and false when it found it running.
	Started bool

	// Stop stops the private cluster (pg_ctl stop -m fast), whether or not
	// this call started it, so that the data directory can be removed. The
	// cluster otherwise keeps running after the process exits so that the next
	// run reuses it; callers that share it (make run, test helpers in several
	// packages) should not call Stop. Stop is never nil: it does nothing
	// unless Source is SourcePrivate.
	Stop func(ctx context.Context) error
}

// Ensure returns a PostgreSQL URL that answers, in this order: the DATABASE_URL
// environment value (cfg.DatabaseURL) if set; else PostgreSQL on 127.0.0.1:5432
// if it answers (user postgres, trust auth; database "postgres"); else a
// private cluster under cfg.DataDir (default ".data/postgres") started from
// the machine's PostgreSQL binaries on a free or configured port.
//
// For the local server and the private cluster, Ensure creates the database
// cfg.Database if it is missing and returns a URL to it. See the package
// documentation for how the private cluster is run. A nil log discards logs.
func Ensure(ctx context.Context, log *slog.Logger, cfg Config) (*Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	noStop := func(context.Context) error { return nil }

	if cfg.DatabaseURL != "" {
		if err := waitReady(ctx, log, cfg.DatabaseURL, cfg.StartTimeout); err != nil {
			return nil, fmt.Errorf("bootstrap: DATABASE_URL %s does not answer: %w; start that server, fix DATABASE_URL, or unset it to use a local or private PostgreSQL", redact(cfg.DatabaseURL), err)
		}
		log.Info("database: using DATABASE_URL", "url", redact(cfg.DatabaseURL))
		return &Result{URL: cfg.DatabaseURL, Source: SourceEnv, Stop: noStop}, nil
	}

	if dbURL, ok := probeLocal(ctx, log, cfg); ok {
		if err := ensureDatabase(ctx, dbURL, cfg.Database); err != nil {
			return nil, fmt.Errorf("bootstrap: error creating database %q on the PostgreSQL at %s: %w; set DATABASE_URL to a database you can use", cfg.Database, cfg.ProbeAddr, err)
		}
		u := serverURL(cfg.ProbeAddr, cfg.Database)
		log.Info("database: using the local PostgreSQL", "url", u)
		return &Result{URL: u, Source: SourceLocal, Stop: noStop}, nil
	}

	return ensurePrivate(ctx, log, cfg)
}

// URL is Ensure for callers that only want the URL, such as a command that
// prints it for a Makefile. A private cluster it starts keeps running.
func URL(ctx context.Context, log *slog.Logger, cfg Config) (string, error) {
	res, err := Ensure(ctx, log, cfg)
	if err != nil {
		return "", err
	}
	return res.URL, nil
}

// probeLocal reports whether the PostgreSQL at cfg.ProbeAddr lets the postgres
// role in without a password, and if so returns a URL to its postgres database.
func probeLocal(ctx context.Context, log *slog.Logger, cfg Config) (string, bool) {
	dbURL := serverURL(cfg.ProbeAddr, "postgres")
	err := ping(ctx, dbURL, cfg.ProbeTimeout)
	if err == nil {
		return dbURL, true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		log.Debug("database: no PostgreSQL at the probe address", "addr", cfg.ProbeAddr, "error", err)
	} else {
		// A server answers but will not let us in: say so, because the user
		// may have meant to use it.
		log.Warn("database: the PostgreSQL at the probe address does not let user postgres in without a password; "+
			"using a private cluster instead (set DATABASE_URL to use that server)", "addr", cfg.ProbeAddr, "error", err)
	}
	return "", false
}

// serverURL returns the URL of database on the server at addr, as the
// superuser, without a password or TLS.
func serverURL(addr, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     addr,
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// redact hides the password of a connection string so that it can be logged.
// A keyword/value string ("host=... password=...") is not shown at all.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "(connection string not shown)"
	}
	return u.Redacted()
}
