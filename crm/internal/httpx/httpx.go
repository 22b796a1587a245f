// Package httpx is the HTTP behaviour every API connector shares: a timeout
// per attempt, retries with jittered exponential backoff on 5xx, resets and
// timeouts, Retry-After on 429, a client-side rate limiter, a cap on response
// size, and typed errors (crm.HTTPError) that never carry credentials.
package httpx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/wedsync/crmhub/crm"
)

// Defaults for Config.
const (
	TimeoutDefault          = 30 * time.Second
	MaxAttemptsDefault      = 8
	BackoffMinDefault       = 250 * time.Millisecond
	BackoffMaxDefault       = 20 * time.Second
	MaxRetryAfterDefault    = 2 * time.Minute
	MaxResponseBytesDefault = 16 << 20
)

// Config tunes a Client. The zero value works.
type Config struct {
	// HTTPClient sends the requests. Defaults to a client with its own
	// transport and no overall timeout (Timeout applies per attempt).
	HTTPClient *http.Client
	// Timeout bounds one attempt, reading the body included. Defaults to 30
	// seconds.
	Timeout time.Duration
	// MaxAttempts is how many times one request is tried before giving up
	// with crm.ErrUnavailable. Defaults to 8.
	MaxAttempts int
	// BackoffMin is the first retry's base delay; it doubles on each retry
	// up to BackoffMax and is jittered by ±50%. Defaults to 250 ms.
	BackoffMin time.Duration
	// BackoffMax caps the backoff delay. Defaults to 20 seconds.
	BackoffMax time.Duration
	// MaxRetryAfter caps how long a Retry-After header can make a request
	// wait; a longer one gives up with crm.ErrUnavailable at once. Defaults
	// to 2 minutes.
	MaxRetryAfter time.Duration
	// RequestsPerMinute limits the rate of attempts (retries included) so the
	// CRM's quota is never reached. Zero or less means no limit.
	RequestsPerMinute int
	// MaxResponseBytes caps a response body. Defaults to 16 MiB.
	MaxResponseBytes int64
	// ParseErrorFunc reads the CRM's error envelope: it returns the CRM's own
	// message and whether the failure is transient whatever its status
	// (HoneyBook's is_timeout). Defaults to the body's first 200 bytes.
	ParseErrorFunc func(status int, body []byte) (message string, transient bool)
	// Secrets are strings (API keys, tokens) scrubbed from every error
	// message, in case a CRM or a transport echoes them.
	Secrets []string
	// SleepFunc waits between attempts; tests replace it. Defaults to a
	// timer that returns early when ctx is done.
	SleepFunc func(ctx context.Context, d time.Duration) error
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	c.Timeout = cmp.Or(c.Timeout, TimeoutDefault)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, MaxAttemptsDefault)
	c.BackoffMin = cmp.Or(c.BackoffMin, BackoffMinDefault)
	c.BackoffMax = cmp.Or(c.BackoffMax, BackoffMaxDefault)
	c.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, MaxRetryAfterDefault)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, MaxResponseBytesDefault)
	if c.ParseErrorFunc == nil {
		c.ParseErrorFunc = func(_ int, body []byte) (string, bool) { return string(body), false }
	}
	if c.SleepFunc == nil {
		c.SleepFunc = sleep
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Timeout < 0:
		return errors.New("timeout must not be negative")
	case c.MaxAttempts < 1:
		return errors.New("max attempts must be at least 1")
	case c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin:
		return errors.New("backoff max must be at least backoff min")
	case c.MaxResponseBytes < 1:
		return errors.New("max response bytes must be positive")
	}
	return nil
}

// FromPolicy fills the retry and timeout fields of a Config from a
// crm.HTTPPolicy; zero fields stay zero and take their defaults.
func FromPolicy(p crm.HTTPPolicy) Config {
	return Config{
		Timeout: p.Timeout, MaxAttempts: p.MaxAttempts, BackoffMin: p.BackoffMin, BackoffMax: p.BackoffMax,
		MaxRetryAfter: p.MaxRetryAfter, MaxResponseBytes: p.MaxResponseBytes,
	}
}

// Client sends requests to one CRM account with the shared behaviour.
type Client struct {
	cfg     Config
	limiter *rate.Limiter
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid http config: %w", err)
	}
	c := &Client{cfg: cfg}
	if cfg.RequestsPerMinute > 0 {
		// A burst of one keeps any window of a minute within the quota plus
		// one request.
		c.limiter = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), 1)
	}
	return c, nil
}

// Request is one request to send. NewFunc builds it afresh for every attempt
// (a body cannot be sent twice).
type Request struct {
	// Method is the HTTP method; "" means GET.
	Method string
	// URL is the absolute URL.
	URL string
	// Header holds the headers, credentials included.
	Header http.Header
	// Body returns the body for one attempt, or nil for none.
	Body func() io.Reader
}

// Response is a successful (2xx) response, its body read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req until it succeeds, fails permanently, or runs out of
// attempts. A 2xx comes back as a Response; anything else as an error: a
// *crm.HTTPError wrapping crm.ErrAuth (401/403), crm.ErrInvalidRequest
// (other 4xx) or crm.ErrUnavailable (transient failures that outlasted the
// retries), or ctx's error.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	for attempt := 0; ; attempt++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("error waiting for rate limiter: %w", err)
			}
		}
		resp, wait, herr := c.attempt(ctx, req)
		if herr == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(herr, crm.ErrUnavailable) {
			return nil, herr
		}
		if attempt == c.cfg.MaxAttempts-1 {
			herr.Message = fmt.Sprintf("%s (gave up after %d attempts)", herr.Message, c.cfg.MaxAttempts)
			return nil, herr
		}
		if wait < 0 {
			wait = c.backoff(attempt)
		} else if wait > c.cfg.MaxRetryAfter {
			herr.Message += fmt.Sprintf(" (Retry-After %s is longer than we wait)", wait)
			return nil, herr
		}
		if err := c.cfg.SleepFunc(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// attempt sends req once. wait is the delay the server asked for (Retry-After)
// or -1 when it did not say.
func (c *Client) attempt(ctx context.Context, req Request) (*Response, time.Duration, *crm.HTTPError) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if req.Body != nil {
		body = req.Body()
	}
	hreq, err := http.NewRequestWithContext(actx, cmp.Or(req.Method, http.MethodGet), req.URL, body)
	if err != nil {
		return nil, -1, &crm.HTTPError{Kind: crm.ErrInvalidRequest, Message: c.scrub("error building request: " + transportMessage(err))}
	}
	for k, v := range req.Header {
		hreq.Header[k] = v
	}
	hresp, err := c.cfg.HTTPClient.Do(hreq)
	if err != nil {
		return nil, -1, &crm.HTTPError{Kind: crm.ErrUnavailable, Message: c.scrub(transportMessage(err))}
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, -1, &crm.HTTPError{Kind: crm.ErrUnavailable, Status: hresp.StatusCode, Message: c.scrub("error reading response: " + transportMessage(err))}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, -1, &crm.HTTPError{Kind: crm.ErrInvalidRequest, Status: hresp.StatusCode,
			Message: fmt.Sprintf("response larger than %d bytes", c.cfg.MaxResponseBytes)}
	}
	if hresp.StatusCode >= 200 && hresp.StatusCode < 300 {
		return &Response{Status: hresp.StatusCode, Header: hresp.Header, Body: data}, -1, nil
	}
	msg, transient := c.cfg.ParseErrorFunc(hresp.StatusCode, data)
	msg = c.scrub(strings.Join(strings.Fields(msg), " "))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	herr := &crm.HTTPError{Status: hresp.StatusCode, Message: msg}
	wait := time.Duration(-1)
	switch s := hresp.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		herr.Kind = crm.ErrAuth
	case s == http.StatusTooManyRequests:
		herr.Kind = crm.ErrUnavailable
		if d, ok := ParseRetryAfter(hresp.Header.Get("Retry-After"), time.Now()); ok {
			wait = d
		}
	case s >= 500 && s != http.StatusNotImplemented, s == http.StatusRequestTimeout, transient:
		herr.Kind = crm.ErrUnavailable
	default:
		herr.Kind = crm.ErrInvalidRequest
	}
	return nil, wait, herr
}

// backoff is the delay before retry number attempt+1: exponential from
// BackoffMin, capped at BackoffMax, with ±50% jitter so that many clients
// retrying at once spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.BackoffMin << min(attempt, 30)
	if d > c.cfg.BackoffMax || d <= 0 {
		d = c.cfg.BackoffMax
	}
	return d/2 + rand.N(d+1)
}

func (c *Client) scrub(s string) string {
	for _, secret := range c.cfg.Secrets {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// transportMessage describes a transport error without the URL, which may
// carry query parameters a caller would rather not log.
func transportMessage(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (relative to now). It reports false when the header is absent or unusable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
