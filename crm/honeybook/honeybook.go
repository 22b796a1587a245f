// Package honeybook reads a vendor's clients from HoneyBook (API v3).
//
// A client record is one project — the wedding — with its couple: the
// members of the project's workspace whose contact kind is "client" (the
// first is the client, the second the partner; vendors are skipped). The
// stage comes from the workspace's status. The record's external id is the
// project's ObjectId.
//
// HoneyBook only exposes contacts through workspace members, so each
// project costs one members request; the connector makes them concurrently
// (Config.Concurrency) under the rate limiter. Workspace statuses for a page
// come in one request with an ids filter (assumed; MaxIDsPerRequest 1 falls
// back to one per workspace).
//
// Authentication is OAuth2 client credentials against the token endpoint:
// with a client secret, or — as HoneyBook's own apps do — a signed JWT
// client_assertion from Config.ClientAssertionFunc (see HS256Assertion).
// Tokens are cached until shortly before they expire; a 401 refreshes the
// token once, and a second 401 fails with crm.ErrAuth.
package honeybook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/internal/httpx"
)

// Defaults for Config.
const (
	BaseURLDefault            = "https://api.honeybook.com/api/v3"
	TokenURLDefault           = "https://api.honeybook.com/oauth2/token"
	RequestsPerMinuteDefault  = 300
	PageSizeDefault           = 100
	MaxIDsPerRequestDefault   = 100
	ConcurrencyDefault        = 4
	CurrencyDefault           = "USD"
	DefaultCountryCodeDefault = "1"
)

// Config configures a Connector.
type Config struct {
	// BaseURL is the API root, version included. Defaults to
	// "https://api.honeybook.com/api/v3"; the simulator's is
	// "<sim>/honeybook/api/v3".
	BaseURL string
	// TokenURL is the OAuth2 token endpoint. HoneyBook's is not public yet;
	// defaults to "https://api.honeybook.com/oauth2/token" (assumed). The
	// simulator's is "<sim>/honeybook/oauth2/token".
	TokenURL string
	// ClientID is the app's client id. Required.
	ClientID string
	// ClientSecret authenticates the app at the token endpoint. Required
	// unless ClientAssertionFunc is set.
	ClientSecret string
	// ClientAssertionFunc returns a signed JWT to authenticate the app with
	// (client_assertion, RFC 7523) instead of the secret. Optional.
	ClientAssertionFunc func(ctx context.Context) (string, error)
	// Scope is requested with the token when not empty. Optional.
	Scope string
	// HTTPClient sends the requests. Defaults to the shared HTTP layer's
	// own client.
	HTTPClient *http.Client
	// RequestsPerMinute is the client-side rate limit, token requests and
	// retries included. HoneyBook publishes no quota. Defaults to 300;
	// negative means no limit.
	RequestsPerMinute int
	// PageSize is the projects per request and per Page, 1 to 100. Defaults
	// to 100.
	PageSize int
	// MaxIDsPerRequest is how many ids one filtered request names. Defaults
	// to 100.
	MaxIDsPerRequest int
	// Concurrency is how many workspace-members requests run at once.
	// Defaults to 4.
	Concurrency int
	// Currency is the ISO 4217 currency of budgets (HoneyBook sends none);
	// budgets are taken as minor units. Defaults to "USD".
	Currency string
	// DefaultCountryCode is the calling code for phone numbers written
	// without one. Defaults to "1".
	DefaultCountryCode string
	// HTTP tunes timeouts and retries. The zero value is production's.
	HTTP crm.HTTPPolicy
	// NowFunc is the clock for token expiry. Defaults to time.Now.
	NowFunc func() time.Time
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.BaseURL = cmp.Or(c.BaseURL, BaseURLDefault)
	c.TokenURL = cmp.Or(c.TokenURL, TokenURLDefault)
	c.RequestsPerMinute = cmp.Or(c.RequestsPerMinute, RequestsPerMinuteDefault)
	c.PageSize = cmp.Or(c.PageSize, PageSizeDefault)
	c.MaxIDsPerRequest = cmp.Or(c.MaxIDsPerRequest, MaxIDsPerRequestDefault)
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.Currency = cmp.Or(c.Currency, CurrencyDefault)
	c.DefaultCountryCode = cmp.Or(c.DefaultCountryCode, DefaultCountryCodeDefault)
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case strings.TrimSpace(c.ClientID) == "":
		return errors.New("client id is required")
	case c.ClientSecret == "" && c.ClientAssertionFunc == nil:
		return errors.New("client secret or client assertion func is required")
	case c.PageSize < 1 || c.PageSize > 100:
		return errors.New("page size must be from 1 to 100")
	case c.MaxIDsPerRequest < 1 || c.Concurrency < 1:
		return errors.New("max ids per request and concurrency must be at least 1")
	case len(c.Currency) != 3:
		return errors.New("currency must be an ISO 4217 code")
	}
	for _, u := range []string{c.BaseURL, c.TokenURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return errors.New("base and token URLs must be absolute http(s) URLs")
		}
	}
	return nil
}

// Connector reads one HoneyBook account. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	client *httpx.Client
	base   string

	mu       sync.Mutex
	token    string
	tokenExp time.Time
}

var _ crm.Connector = (*Connector)(nil)

// New returns a Connector for cfg. It makes no request.
func New(cfg Config) (*Connector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid honeybook config: %w", err)
	}
	hc := httpx.FromPolicy(cfg.HTTP)
	hc.HTTPClient = cfg.HTTPClient
	hc.RequestsPerMinute = cfg.RequestsPerMinute
	hc.ParseErrorFunc = parseError
	hc.Secrets = []string{cfg.ClientSecret}
	client, err := httpx.New(hc)
	if err != nil {
		return nil, fmt.Errorf("error creating honeybook http client: %w", err)
	}
	return &Connector{cfg: cfg, client: client, base: strings.TrimRight(cfg.BaseURL, "/")}, nil
}

// parseError reads HoneyBook's error envelope, or an OAuth2 error from the
// token endpoint. is_timeout makes any status retryable.
func parseError(_ int, body []byte) (string, bool) {
	var e struct {
		IsTimeout    bool   `json:"is_timeout"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
		OAuthError   any    `json:"error"`
		Description  string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return string(body), false
	}
	if e.ErrorType != "" || e.ErrorMessage != "" {
		return strings.TrimPrefix(e.ErrorType+": "+e.ErrorMessage, ": "), e.IsTimeout
	}
	if s, ok := e.OAuthError.(string); ok {
		return strings.TrimSuffix(s+": "+e.Description, ": "), false
	}
	return string(body), false
}

// accessToken returns a cached token, or fetches one.
func (c *Connector) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.cfg.NowFunc().Before(c.tokenExp) {
		return c.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.cfg.ClientID}}
	if c.cfg.ClientAssertionFunc != nil {
		a, err := c.cfg.ClientAssertionFunc(ctx)
		if err != nil {
			return "", fmt.Errorf("error signing honeybook client assertion: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	} else {
		form.Set("client_secret", c.cfg.ClientSecret)
	}
	if c.cfg.Scope != "" {
		form.Set("scope", c.cfg.Scope)
	}
	body := form.Encode()
	resp, err := c.client.Do(ctx, httpx.Request{
		Method: http.MethodPost, URL: c.cfg.TokenURL,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}},
		Body:   func() io.Reader { return strings.NewReader(body) },
	})
	if err != nil {
		return "", fmt.Errorf("error getting honeybook access token: %w", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("error getting honeybook access token: %w", &crm.HTTPError{Kind: crm.ErrUnavailable, Status: resp.Status, Message: "token response has no access_token"})
	}
	ttl := time.Duration(cmp.Or(tok.ExpiresIn, 300)) * time.Second
	c.token, c.tokenExp = tok.AccessToken, c.cfg.NowFunc().Add(ttl-min(30*time.Second, ttl/10))
	return c.token, nil
}

func (c *Connector) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

// get reads path into out. A 401 refreshes the token once.
func (c *Connector) get(ctx context.Context, path string, q url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return err
		}
		u := c.base + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		resp, err := c.client.Do(ctx, httpx.Request{URL: u, Header: http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"application/json"}}})
		var herr *crm.HTTPError
		if errors.As(err, &herr) && herr.Status == http.StatusUnauthorized && attempt == 0 {
			c.dropToken(tok)
			continue
		}
		if err != nil {
			return fmt.Errorf("error reading honeybook %s: %w", path, err)
		}
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("error decoding honeybook %s: %w", path, &crm.HTTPError{Kind: crm.ErrUnavailable, Status: resp.Status, Message: "unexpected response: " + err.Error()})
		}
		return nil
	}
}

type list struct {
	Data       []json.RawMessage `json:"data"`
	Pagination struct {
		Page       int `json:"page"`
		TotalItems int `json:"total_items"`
		TotalPages int `json:"total_pages"`
	} `json:"pagination"`
}

// CheckCredentials gets a token and reads one project.
func (c *Connector) CheckCredentials(ctx context.Context) error {
	var l list
	if err := c.get(ctx, "/projects", url.Values{"page": {"1"}, "per_page": {"1"}}, &l); err != nil {
		return fmt.Errorf("error checking honeybook credentials: %w", err)
	}
	return nil
}

// cursor is Page.Cursor: the next page, the watermark so far, and the
// created_after the run filters by (so a resumed run pages the same set).
type cursor struct {
	Page      int    `json:"page"`
	Watermark string `json:"wm,omitempty"`
	After     string `json:"after,omitempty"`
}

// Stream reads projects oldest first. INCREMENTAL reads only projects
// created after StreamRequest.Watermark (created_after): HoneyBook has no
// updated-since filter, so edits to older projects show up on the next FULL
// import. Page.Watermark is the newest created_at seen.
func (c *Connector) Stream(ctx context.Context, req crm.StreamRequest, fn func(context.Context, crm.Page) error) error {
	cur := cursor{Page: 1}
	if req.Mode == crm.ModeIncremental {
		cur.After = req.Watermark
	}
	if req.Resume != "" {
		if err := json.Unmarshal([]byte(req.Resume), &cur); err != nil || cur.Page < 1 {
			return fmt.Errorf("invalid honeybook resume cursor %q: %w", req.Resume, crm.ErrInvalidRequest)
		}
	}
	var wm time.Time
	for _, s := range []string{req.Watermark, cur.Watermark} {
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("invalid honeybook watermark %q: %w", s, crm.ErrInvalidRequest)
		}
		if t.After(wm) {
			wm = t
		}
	}
	q := url.Values{"per_page": {strconv.Itoa(c.cfg.PageSize)}, "sort": {"created_at"}}
	if cur.After != "" {
		q.Set("created_after", cur.After)
	}
	for page := cur.Page; ; page++ {
		q.Set("page", strconv.Itoa(page))
		var l list
		if err := c.get(ctx, "/projects", q, &l); err != nil {
			var herr *crm.HTTPError
			if errors.As(err, &herr) && herr.Status == http.StatusNotFound {
				// HoneyBook answers 404 for what the app may not see.
				return fmt.Errorf("honeybook refused to list projects (404: no permission?): %w", &crm.HTTPError{Kind: crm.ErrAuth, Status: 404, Message: herr.Message})
			}
			return err
		}
		p, newest, err := c.page(ctx, l.Data, (page-1)*c.cfg.PageSize)
		if err != nil {
			return err
		}
		if newest.After(wm) {
			wm = newest
		}
		if !wm.IsZero() {
			p.Watermark = wm.UTC().Format(time.RFC3339Nano)
		}
		next, _ := json.Marshal(cursor{Page: page + 1, Watermark: p.Watermark, After: cur.After})
		p.Cursor = string(next)
		p.TotalEstimate = l.Pagination.TotalItems
		if err := fn(ctx, p); err != nil {
			return err
		}
		if page >= l.Pagination.TotalPages || len(l.Data) == 0 {
			return nil
		}
	}
}
