package main

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/resolvers"
)

// Defaults of the rate limits.
const (
	// RateLimitPerMinuteDefault is the sustained request rate of one token.
	RateLimitPerMinuteDefault = 600
	// RateLimitBurstDefault is how many requests a token may make at once.
	RateLimitBurstDefault = 100
	// AnonRateLimitPerMinuteDefault is the sustained request rate of one
	// client IP sending no valid token.
	AnonRateLimitPerMinuteDefault = 60
	// AnonRateLimitBurstDefault is the burst of one anonymous client IP.
	AnonRateLimitBurstDefault = 20
	// limiterIdle is how long an unused limiter is kept; after that it is
	// full again anyway.
	limiterIdle = 10 * time.Minute
)

// rateLimiter limits requests per API token, and per client IP for requests
// without a valid token, with token buckets (golang.org/x/time/rate). It is
// in memory, per node: N nodes behind a load balancer allow N times the
// rate, which is enough to stop a runaway client or script.
type rateLimiter struct {
	perToken, perIP rate.Limit
	burst, ipBurst  int
	now             func() time.Time

	mu        sync.Mutex
	limiters  map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimiter(perMinute, burst, anonPerMinute, anonBurst int) *rateLimiter {
	return &rateLimiter{
		perToken: rate.Limit(float64(perMinute) / 60), burst: burst,
		perIP: rate.Limit(float64(anonPerMinute) / 60), ipBurst: anonBurst,
		now: time.Now, limiters: map[string]*limiterEntry{},
	}
}

// wrap answers 429 with Retry-After and a RATE_LIMITED GraphQL error once
// the caller's bucket is empty. It runs after AuthMiddleware, which has put
// the principal in the context.
func (l *rateLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, limit, burst := "ip:"+clientIP(r), l.perIP, l.ipBurst
		if p := auth.PrincipalFrom(r.Context()); p != nil {
			key, limit, burst = "token:"+strconv.FormatInt(p.TokenID, 10), l.perToken, l.burst
		}
		if wait := l.reserve(key, limit, burst); wait > 0 {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeHTTPErrorExt(w, http.StatusTooManyRequests,
				map[string]any{"code": resolvers.CodeRateLimited, "retryAfterSeconds": secs},
				fmt.Sprintf("too many requests: try again in %d s", secs))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reserve takes one request from key's bucket and returns 0, or how long
// until the next request would be allowed (and takes nothing).
func (l *rateLimiter) reserve(key string, limit rate.Limit, burst int) time.Duration {
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.lastSweep) > limiterIdle {
		for k, e := range l.limiters {
			if now.Sub(e.seen) > limiterIdle {
				delete(l.limiters, k)
			}
		}
		l.lastSweep = now
	}
	e, ok := l.limiters[key]
	if !ok {
		e = &limiterEntry{lim: rate.NewLimiter(limit, burst)}
		l.limiters[key] = e
	}
	e.seen = now
	l.mu.Unlock()

	res := e.lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Minute
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// clientIP is the peer's address. X-Forwarded-For is not trusted: a client
// could rotate it to dodge the limit; behind a proxy, the proxy should
// enforce its own per-IP limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
