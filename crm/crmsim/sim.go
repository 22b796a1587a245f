// Package crmsim simulates the CRMs crmhub imports from: Tave / VSCO
// Workspace v2 under /tave/api/v2/ and HoneyBook v3 under /honeybook/api/v3/
// (token endpoint /honeybook/oauth2/token), with the shapes, pagination, auth
// and errors described in crm-apis.md.
//
// The credential (a Tave API key or a HoneyBook client id) picks the tenant:
// "demo-N" has N deterministic client records, and suffixes add faults:
// "+flaky", "+slow", "+ratelimited", "+revoked", "+messy", "+changing", e.g.
// "demo-5000+flaky+messy". Every record is computed from its index, so a
// tenant of a million clients costs no memory.
//
// The simulator is for tests and for `crmhub dev`; it is never used by a
// connector at run time.
package crmsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Config.
const (
	ChangeIntervalDefault     = time.Minute
	ChangedPerIntervalDefault = 10
	CreatedPerIntervalDefault = 2
	FlakyRateDefault          = 0.3
	StallDurationDefault      = 35 * time.Second
	SlowLatencyDefault        = 200 * time.Millisecond
	RateLimitQuotaDefault     = 120
	RateLimitWindowDefault    = time.Minute
	MessyPermilleDefault      = 20
	TokenTTLDefault           = 5 * time.Minute
	MaxTenantSizeDefault      = 10_000_000
	FlakyRetryAfterDefault    = time.Second
)

// DataAsOfDefault is the moment the simulated books are written up to: base
// records were created over the four years before it.
var DataAsOfDefault = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config tunes the simulator. The zero value is what CONTRACT.md describes.
type Config struct {
	// NowFunc is the simulator's clock; tests control "+changing" and token
	// expiry with it. Defaults to time.Now.
	NowFunc func() time.Time
	// DataAsOf is when the base records' history ends: records are created
	// over the four years before it and stages follow from it. Defaults to
	// DataAsOfDefault (2026-01-01).
	DataAsOf time.Time
	// ChangeEpoch is when "+changing" tenants start to change; one before
	// DataAsOf is moved to DataAsOf. Defaults to the clock's time when New is called
	// (or DataAsOf, if later), so a dev server's data changes from start-up.
	ChangeEpoch time.Time
	// ChangeInterval is the tick of "+changing": every tick some records get
	// a new modified stamp and some are created. Defaults to 1 minute.
	ChangeInterval time.Duration
	// ChangedPerInterval is how many existing records change each tick.
	// Defaults to 10.
	ChangedPerInterval int
	// CreatedPerInterval is how many records are created each tick. Defaults
	// to 2.
	CreatedPerInterval int
	// FlakyRate is the share of "+flaky" requests that fail. Defaults to 0.3.
	FlakyRate float64
	// FlakyRetryAfter is the Retry-After a "+flaky" 429 carries, rounded up
	// to whole seconds. Defaults to 1 second.
	FlakyRetryAfter time.Duration
	// StallDuration is how long a "+flaky" stall holds a request before
	// answering 504; it should be longer than the client's timeout. Defaults
	// to 35 seconds.
	StallDuration time.Duration
	// SlowLatency is the extra latency of every "+slow" request. Defaults to
	// 200 ms.
	SlowLatency time.Duration
	// RateLimitQuota is how many requests a "+ratelimited" credential may
	// make per RateLimitWindow. Defaults to 120 (the assumed Tave quota).
	RateLimitQuota int
	// RateLimitWindow is the fixed window the quota counts in. Defaults to 1
	// minute.
	RateLimitWindow time.Duration
	// MessyPermille is how many records in a thousand "+messy" breaks.
	// Defaults to 20 (2%).
	MessyPermille int
	// TokenTTL is how long a HoneyBook access token lives. Defaults to 5
	// minutes.
	TokenTTL time.Duration
	// TokenSecret signs HoneyBook access tokens so the simulator can read
	// the tenant back without remembering tokens. Defaults to a fixed string.
	TokenSecret string
	// MaxTenantSize is the largest N a "demo-N" credential may name.
	// Defaults to 10,000,000.
	MaxTenantSize int
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	if c.DataAsOf.IsZero() {
		c.DataAsOf = DataAsOfDefault
	}
	if c.ChangeEpoch.IsZero() {
		c.ChangeEpoch = c.NowFunc().UTC().Truncate(time.Second)
		if c.ChangeEpoch.Before(c.DataAsOf) {
			c.ChangeEpoch = c.DataAsOf
		}
	}
	c.ChangeInterval = cmp.Or(c.ChangeInterval, ChangeIntervalDefault)
	c.ChangedPerInterval = cmp.Or(c.ChangedPerInterval, ChangedPerIntervalDefault)
	c.CreatedPerInterval = cmp.Or(c.CreatedPerInterval, CreatedPerIntervalDefault)
	c.FlakyRate = cmp.Or(c.FlakyRate, FlakyRateDefault)
	c.FlakyRetryAfter = cmp.Or(c.FlakyRetryAfter, FlakyRetryAfterDefault)
	c.StallDuration = cmp.Or(c.StallDuration, StallDurationDefault)
	c.SlowLatency = cmp.Or(c.SlowLatency, SlowLatencyDefault)
	c.RateLimitQuota = cmp.Or(c.RateLimitQuota, RateLimitQuotaDefault)
	c.RateLimitWindow = cmp.Or(c.RateLimitWindow, RateLimitWindowDefault)
	c.MessyPermille = cmp.Or(c.MessyPermille, MessyPermilleDefault)
	c.TokenTTL = cmp.Or(c.TokenTTL, TokenTTLDefault)
	c.TokenSecret = cmp.Or(c.TokenSecret, "crmsim-token-secret")
	c.MaxTenantSize = cmp.Or(c.MaxTenantSize, MaxTenantSizeDefault)
	return c
}

// clamp brings values that cannot work back into range, so that New never
// fails: a simulator is a test and dev tool, and a wrong knob should not
// stop a server from starting.
func (c Config) clamp() Config {
	if c.ChangeEpoch.Before(c.DataAsOf) {
		c.ChangeEpoch = c.DataAsOf
	}
	if c.ChangeInterval < 0 {
		c.ChangeInterval = ChangeIntervalDefault
	}
	if c.RateLimitWindow < 0 {
		c.RateLimitWindow = RateLimitWindowDefault
	}
	c.ChangedPerInterval = max(c.ChangedPerInterval, 0)
	c.CreatedPerInterval = max(c.CreatedPerInterval, 0)
	c.RateLimitQuota = max(c.RateLimitQuota, 0)
	c.FlakyRate = min(max(c.FlakyRate, 0), 1)
	c.MessyPermille = min(max(c.MessyPermille, 0), 1000)
	return c
}

// Simulator is the http.Handler serving both CRMs. It remembers nothing per
// record; per credential it keeps only request counters.
type Simulator struct {
	cfg Config
	mux *http.ServeMux

	mu    sync.Mutex
	stats map[string]*credStats
}

type credStats struct {
	requests    int
	limited     int // 429s for the quota
	windowStart time.Time
	windowCount int
	maxInWindow int
}

// New returns a simulator for cfg. Values out of range are clamped.
func New(cfg Config) *Simulator {
	cfg = cfg.WithDefaults().clamp()
	s := &Simulator{cfg: cfg, mux: http.NewServeMux(), stats: map[string]*credStats{}}
	s.routeTave()
	s.routeHoneyBook()
	return s
}

// ServeHTTP serves the simulated CRMs. It works mounted under a prefix with
// http.StripPrefix.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Requests is how many requests the credential has made so far, token
// requests included.
func (s *Simulator) Requests(credential string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[credential]; st != nil {
		return st.requests
	}
	return 0
}

// RateLimited is how many requests of a "+ratelimited" credential were
// refused for exceeding the quota, and the most requests it made in any one
// quota window (refused ones included).
func (s *Simulator) RateLimited(credential string) (refused, maxInWindow int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[credential]; st != nil {
		return st.limited, st.maxInWindow
	}
	return 0, 0
}

// tenant is a parsed credential.
type tenant struct {
	credential                                         string
	n                                                  int
	flaky, slow, ratelimited, revoked, messy, changing bool
}

func (s *Simulator) parseCredential(cred string) (tenant, error) {
	parts := strings.Split(strings.TrimSpace(cred), "+")
	num, ok := strings.CutPrefix(parts[0], "demo-")
	if !ok {
		return tenant{}, errors.New(`credential must look like "demo-N[+suffix...]"`)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > s.cfg.MaxTenantSize || num != strconv.Itoa(n) {
		return tenant{}, fmt.Errorf("tenant size must be a number from 0 to %d", s.cfg.MaxTenantSize)
	}
	t := tenant{credential: cred, n: n}
	for _, suf := range parts[1:] {
		switch suf {
		case "flaky":
			t.flaky = true
		case "slow":
			t.slow = true
		case "ratelimited":
			t.ratelimited = true
		case "revoked":
			t.revoked = true
		case "messy":
			t.messy = true
		case "changing":
			t.changing = true
		default:
			return tenant{}, fmt.Errorf("unknown suffix %q", suf)
		}
	}
	return t, nil
}

// fault is what the fault suffixes decided for one request.
type fault int

const (
	faultNone fault = iota
	faultRevoked
	faultQuota
	faultTooMany
	fault500
	fault503
	faultReset
	faultStall
	faultCancelled
)

// applyFaults counts the request and decides its fate. It sleeps for
// "+slow" and for a stall, and resets the connection itself.
func (s *Simulator) applyFaults(w http.ResponseWriter, r *http.Request, t tenant) (fault, time.Duration) {
	now := s.cfg.NowFunc()
	s.mu.Lock()
	st := s.stats[t.credential]
	if st == nil {
		st = &credStats{}
		s.stats[t.credential] = st
	}
	st.requests++
	var retryAfter time.Duration
	quota := false
	if t.ratelimited && !t.revoked {
		ws := now.Truncate(s.cfg.RateLimitWindow)
		if !ws.Equal(st.windowStart) {
			st.windowStart, st.windowCount = ws, 0
		}
		st.windowCount++
		st.maxInWindow = max(st.maxInWindow, st.windowCount)
		if st.windowCount > s.cfg.RateLimitQuota {
			st.limited++
			quota = true
			retryAfter = ws.Add(s.cfg.RateLimitWindow).Sub(now)
		}
	}
	s.mu.Unlock()

	if t.slow && !sleepCtx(r.Context(), s.cfg.SlowLatency) {
		return faultCancelled, 0
	}
	switch {
	case t.revoked:
		return faultRevoked, 0
	case quota:
		return faultQuota, retryAfter
	}
	if !t.flaky || rand.Float64() >= s.cfg.FlakyRate {
		return faultNone, 0
	}
	switch rand.IntN(5) {
	case 0:
		return faultTooMany, s.cfg.FlakyRetryAfter
	case 1:
		return fault500, 0
	case 2:
		return fault503, 0
	case 3:
		if resetConn(w) {
			return faultReset, 0
		}
		return fault503, 0
	default:
		if !sleepCtx(r.Context(), s.cfg.StallDuration) {
			return faultCancelled, 0
		}
		return faultStall, 0
	}
}

// retryAfterSeconds renders a delay as Retry-After delay-seconds, rounded
// up so a client that obeys it lands in the next window.
func retryAfterSeconds(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}

// resetConn closes the connection abruptly (RST), as a crashed proxy would.
func resetConn(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pageParams reads page-number pagination. ok is false with a message when
// the parameters are invalid.
func pageParams(r *http.Request, sizeName string, def, lo, hi int) (page, size int, msg string) {
	page, size = 1, def
	if v := r.URL.Query().Get("page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 {
			return 0, 0, "page must be a whole number from 1"
		}
		page = p
	}
	if v := r.URL.Query().Get(sizeName); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < lo || p > hi {
			return 0, 0, fmt.Sprintf("%s must be a whole number from %d to %d", sizeName, lo, hi)
		}
		size = p
	}
	return page, size, ""
}

// idList splits a comma-separated id filter.
func idList(v string) []string {
	if v == "" {
		return nil
	}
	out := strings.Split(v, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}
