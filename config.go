package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/crmhub/resolvers"
)

// Config is crmhub's configuration, read from the environment. Every
// variable is listed in the README with its default.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string (DATABASE_URL).
	// Required by serve; dev finds or starts a database when it is empty.
	DatabaseURL string
	// Addr is the HTTP listen address (CRMHUB_ADDR). Defaults to ":8080".
	Addr string
	// SecretKey is base64 of 32 bytes that seals CRM credentials
	// (CRMHUB_SECRET_KEY). Required by serve.
	SecretKey string
	// OldSecretKeys are earlier keys, comma separated, still accepted for
	// opening credentials during a key rotation (CRMHUB_OLD_SECRET_KEYS).
	OldSecretKeys []string
	// LogFormat is "json" or "text" (CRMHUB_LOG_FORMAT). Defaults to json in
	// serve and text in dev.
	LogFormat string
	// LogLevel is debug, info, warn or error (CRMHUB_LOG_LEVEL). Defaults to
	// info.
	LogLevel slog.Level
	// MaxWorkers is how many import jobs one node works at once
	// (CRMHUB_MAX_WORKERS); 0 makes an API-only node that enqueues imports
	// but works none. Defaults to 25.
	MaxWorkers int
	// RequestTimeout bounds one GraphQL request (CRMHUB_REQUEST_TIMEOUT).
	// Defaults to 30 seconds.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown (CRMHUB_SHUTDOWN_TIMEOUT).
	// Defaults to 20 seconds.
	ShutdownTimeout time.Duration
	// AllowedOrigins are the origins (path.Match patterns of the Origin's
	// host, or of scheme://host when a pattern has "://") allowed to open
	// WebSockets from a browser (CRMHUB_ALLOWED_ORIGINS, comma separated).
	// Same-origin always works.
	AllowedOrigins []string
	// DBMaxConns is the pool size (CRMHUB_DB_MAX_CONNS). Defaults to 40.
	DBMaxConns int32
	// ImportSlice is how long one execution of an import job reads before it
	// hands the run back to the queue to continue from its checkpoint
	// (CRMHUB_IMPORT_SLICE). River's job timeout is three slices. Defaults
	// to 20 seconds.
	ImportSlice time.Duration
	// RescueStuckJobsAfter is how long a job may run before River takes its
	// node for dead and works it again (CRMHUB_RESCUE_STUCK_JOBS_AFTER).
	// Defaults to three slices plus 15 seconds (75 seconds).
	RescueStuckJobsAfter time.Duration
	// CRMRequestsPerMinute overrides the connectors' client-side rate limit
	// per integration (CRMHUB_CRM_REQUESTS_PER_MINUTE): 0 keeps each
	// provider's (Tave 100, HoneyBook 300), -1 turns it off. Defaults to 0
	// in serve and -1 in dev, whose CRMs are the local simulator.
	CRMRequestsPerMinute int
	// KeepAliveInterval is how often subscription connections are pinged
	// (CRMHUB_KEEPALIVE_INTERVAL): a WebSocket ping frame (and a "ka"
	// message on the legacy graphql-ws subprotocol), an SSE comment.
	// Defaults to 10 seconds.
	KeepAliveInterval time.Duration
	// KeepAliveTimeout is how long a WebSocket peer has to answer a ping,
	// or to take a message, before its connection is closed and its
	// subscriptions freed (CRMHUB_KEEPALIVE_TIMEOUT). A dead phone is
	// noticed within KeepAliveInterval + KeepAliveTimeout. Defaults to 10
	// seconds.
	KeepAliveTimeout time.Duration
	// CacheOff turns the read cache of client pages, clients and answers off
	// (CRMHUB_CACHE=off; "on" is the default), for measuring or debugging.
	CacheOff bool
	// CacheTTL bounds how long a cached page, client or answer is kept
	// (CRMHUB_CACHE_TTL); data changes never wait for it. Defaults to 5
	// minutes.
	CacheTTL time.Duration
	// CacheMaxItems caps the cached pages, clients and answers
	// (CRMHUB_CACHE_MAX_ITEMS). Defaults to 20000.
	CacheMaxItems int
	// CacheMaxAnswerBytes caps the bytes of cached answers
	// (CRMHUB_CACHE_MAX_ANSWER_BYTES). Defaults to 64 MiB.
	CacheMaxAnswerBytes int
	// PrincipalCacheTTL is how long a token's principal is reused
	// (CRMHUB_PRINCIPAL_CACHE_TTL): the bound on a revocation reaching a
	// node that missed its notification. Defaults to 1 second.
	PrincipalCacheTTL time.Duration
	// Limits are the API's abuse limits (config_limits.go).
	Limits Limits
}

// Defaults of Config.
const (
	AddrDefault              = ":8080"
	MaxWorkersDefault        = 25
	RequestTimeoutDefault    = 30 * time.Second
	ShutdownTimeoutDefault   = 20 * time.Second
	DBMaxConnsDefault        = 40
	KeepAliveIntervalDefault = 10 * time.Second
	KeepAliveTimeoutDefault  = 10 * time.Second
)

// errMissingConfig is what serve says when it cannot start.
var errMissingConfig = errors.New("missing configuration")

func loadConfig(getenv func(string) string, logFormatDefault string) (*Config, error) {
	c := &Config{
		DatabaseURL:         getenv("DATABASE_URL"),
		Addr:                cmp.Or(getenv("CRMHUB_ADDR"), AddrDefault),
		SecretKey:           getenv("CRMHUB_SECRET_KEY"),
		OldSecretKeys:       splitList(getenv("CRMHUB_OLD_SECRET_KEYS")),
		LogFormat:           cmp.Or(getenv("CRMHUB_LOG_FORMAT"), logFormatDefault),
		AllowedOrigins:      splitList(getenv("CRMHUB_ALLOWED_ORIGINS")),
		MaxWorkers:          MaxWorkersDefault,
		RequestTimeout:      RequestTimeoutDefault,
		ShutdownTimeout:     ShutdownTimeoutDefault,
		DBMaxConns:          DBMaxConnsDefault,
		KeepAliveInterval:   KeepAliveIntervalDefault,
		KeepAliveTimeout:    KeepAliveTimeoutDefault,
		CacheTTL:            resolvers.CacheTTLDefault,
		CacheMaxItems:       resolvers.CacheMaxItemsDefault,
		CacheMaxAnswerBytes: resolvers.CacheMaxAnswerBytesDefault,
		PrincipalCacheTTL:   resolvers.PrincipalCacheTTLDefault,
	}
	var errs []error
	if v := getenv("CRMHUB_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("CRMHUB_LOG_LEVEL: %w", err))
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("CRMHUB_LOG_FORMAT must be json or text, not %q", c.LogFormat))
	}
	intVar := func(name string, dst *int, lo, hi int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				errs = append(errs, fmt.Errorf("%s must be a whole number from %d to %d, not %q", name, lo, hi, v))
				return
			}
			*dst = n
		}
	}
	durVar := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s must be a duration like 30s, not %q", name, v))
				return
			}
			*dst = d
		}
	}
	intVar("CRMHUB_MAX_WORKERS", &c.MaxWorkers, 0, 10000)
	intVar("CRMHUB_CRM_REQUESTS_PER_MINUTE", &c.CRMRequestsPerMinute, -1, 1000000)
	maxConns := int(c.DBMaxConns)
	intVar("CRMHUB_DB_MAX_CONNS", &maxConns, 4, 10000)
	c.DBMaxConns = int32(maxConns)
	limits, limitErrs := loadLimits(getenv)
	c.Limits, errs = limits, append(errs, limitErrs...)
	durVar("CRMHUB_REQUEST_TIMEOUT", &c.RequestTimeout)
	durVar("CRMHUB_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	durVar("CRMHUB_IMPORT_SLICE", &c.ImportSlice)
	durVar("CRMHUB_RESCUE_STUCK_JOBS_AFTER", &c.RescueStuckJobsAfter)
	durVar("CRMHUB_KEEPALIVE_INTERVAL", &c.KeepAliveInterval)
	durVar("CRMHUB_KEEPALIVE_TIMEOUT", &c.KeepAliveTimeout)
	durVar("CRMHUB_CACHE_TTL", &c.CacheTTL)
	durVar("CRMHUB_PRINCIPAL_CACHE_TTL", &c.PrincipalCacheTTL)
	intVar("CRMHUB_CACHE_MAX_ITEMS", &c.CacheMaxItems, 1, 10_000_000)
	intVar("CRMHUB_CACHE_MAX_ANSWER_BYTES", &c.CacheMaxAnswerBytes, 1, 1<<40)
	switch v := strings.ToLower(getenv("CRMHUB_CACHE")); v {
	case "", "on":
	case "off":
		c.CacheOff = true
	default:
		errs = append(errs, fmt.Errorf("CRMHUB_CACHE must be on or off, not %q", v))
	}
	return c, errors.Join(errs...)
}

// requireServeConfig checks what serve cannot run without, and says exactly
// how to fix it.
func (c *Config) requireServeConfig() error {
	var missing []string
	if c.DatabaseURL == "" {
		missing = append(missing, "DATABASE_URL is not set: set it to a PostgreSQL URL, e.g. DATABASE_URL=postgres://user:pass@host:5432/crmhub")
	}
	if c.SecretKey == "" {
		missing = append(missing, "CRMHUB_SECRET_KEY is not set: it seals CRM credentials; make one with `openssl rand -base64 32` (or `head -c32 /dev/urandom | base64`) and keep it safe: losing it loses every stored credential")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w:\n  %s", errMissingConfig, strings.Join(missing, "\n  "))
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func newLogger(format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
