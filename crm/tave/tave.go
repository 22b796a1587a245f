// Package tave reads a studio's clients from Tave / VSCO Workspace (API v2).
//
// A client record is one job — the wedding — with its couple: the job's
// contacts whose job-contact link has the client role kind. The first such
// contact is the client, the second the partner. Email and phone come from
// the client, falling back to the partner; the venue is the address of the
// job's first event location. The record's external id is the job's ULID.
//
// Requests per page of jobs are constant, not one per job: the connector
// reads a page of jobs, then the page's job-contact links, contacts and
// events with comma-separated id filters (jobId=a,b,c; id=a,b,c), chunked by
// Config.MaxIDsPerRequest, and joins them in memory. Tave's documentation
// shows the filters with a single id; the list form is assumed, and setting
// MaxIDsPerRequest to 1 falls back to one id per request.
package tave

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/internal/httpx"
)

// Defaults for Config.
const (
	BaseURLDefault           = "https://workspace.vsco.co/api/v2"
	RequestsPerMinuteDefault = 100
	PageSizeDefault          = 100
	MaxIDsPerRequestDefault  = 100
	CurrencyDefault          = "USD"
)

// Config configures a Connector.
type Config struct {
	// BaseURL is the API root, version included. Defaults to
	// "https://workspace.vsco.co/api/v2"; the simulator's is
	// "<sim>/tave/api/v2".
	BaseURL string
	// APIKey is the studio's API key. Required.
	APIKey string
	// UseBearer sends the key as "Authorization: Bearer" instead of
	// X-API-KEY. Defaults to false.
	UseBearer bool
	// HTTPClient sends the requests. Defaults to a client of the shared
	// HTTP layer's own.
	HTTPClient *http.Client
	// RequestsPerMinute is the client-side rate limit, retries included.
	// Tave does not publish its quota; 120 a minute is assumed, and the
	// default stays under it. Defaults to 100; negative means no limit.
	RequestsPerMinute int
	// PageSize is the jobs per request and per Page, 10 to 100. Defaults to
	// 100.
	PageSize int
	// MaxIDsPerRequest is how many ids one filtered request names. Defaults
	// to 100.
	MaxIDsPerRequest int
	// Currency is the studio's ISO 4217 currency: Tave sends amounts without
	// one. Defaults to "USD".
	Currency string
	// HTTP tunes timeouts and retries. The zero value is production's.
	HTTP crm.HTTPPolicy
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.BaseURL = cmp.Or(c.BaseURL, BaseURLDefault)
	c.RequestsPerMinute = cmp.Or(c.RequestsPerMinute, RequestsPerMinuteDefault)
	c.PageSize = cmp.Or(c.PageSize, PageSizeDefault)
	c.MaxIDsPerRequest = cmp.Or(c.MaxIDsPerRequest, MaxIDsPerRequestDefault)
	c.Currency = cmp.Or(c.Currency, CurrencyDefault)
	return c
}

func (c Config) validate() error {
	switch {
	case strings.TrimSpace(c.APIKey) == "":
		return errors.New("API key is required")
	case c.PageSize < 10 || c.PageSize > 100:
		return errors.New("page size must be from 10 to 100")
	case c.MaxIDsPerRequest < 1:
		return errors.New("max ids per request must be at least 1")
	case len(c.Currency) != 3:
		return errors.New("currency must be an ISO 4217 code")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("base URL must be an absolute http(s) URL")
	}
	return nil
}

// Connector reads one Tave account. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	client *httpx.Client
	base   string
}

var _ crm.Connector = (*Connector)(nil)

// New returns a Connector for cfg.
func New(cfg Config) (*Connector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid tave config: %w", err)
	}
	hc := httpx.FromPolicy(cfg.HTTP)
	hc.HTTPClient = cfg.HTTPClient
	hc.RequestsPerMinute = cfg.RequestsPerMinute
	hc.ParseErrorFunc = parseError
	hc.Secrets = []string{cfg.APIKey}
	client, err := httpx.New(hc)
	if err != nil {
		return nil, fmt.Errorf("error creating tave http client: %w", err)
	}
	return &Connector{cfg: cfg, client: client, base: strings.TrimRight(cfg.BaseURL, "/")}, nil
}

// parseError reads Tave's error envelope {type, title, detail, status}.
func parseError(_ int, body []byte) (string, bool) {
	var e struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &e) != nil || (e.Title == "" && e.Detail == "") {
		return string(body), false
	}
	msg := strings.TrimSuffix(e.Title+": "+e.Detail, ": ")
	if e.Type != "" {
		msg = e.Type + ": " + msg
	}
	return msg, false
}

type collection struct {
	Meta struct {
		CurrentPage int `json:"currentPage"`
		TotalPages  int `json:"totalPages"`
		TotalItems  int `json:"totalItems"`
	} `json:"meta"`
	Items []json.RawMessage `json:"items"`
}

func (c *Connector) list(ctx context.Context, path string, q url.Values) (*collection, error) {
	h := http.Header{"Accept": {"application/json"}}
	if c.cfg.UseBearer {
		h.Set("Authorization", "Bearer "+c.cfg.APIKey)
	} else {
		h.Set("X-API-KEY", c.cfg.APIKey)
	}
	resp, err := c.client.Do(ctx, httpx.Request{URL: c.base + path + "?" + q.Encode(), Header: h})
	if err != nil {
		return nil, fmt.Errorf("error reading tave %s: %w", path, err)
	}
	var col collection
	if err := json.Unmarshal(resp.Body, &col); err != nil {
		return nil, fmt.Errorf("error decoding tave %s: %w", path, &crm.HTTPError{Kind: crm.ErrUnavailable, Status: resp.Status, Message: "response is not a Tave collection: " + err.Error()})
	}
	return &col, nil
}

// listByIDs reads every item of a collection filtered by ids, chunked and
// paged.
func (c *Connector) listByIDs(ctx context.Context, path, param string, ids []string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for lo := 0; lo < len(ids); lo += c.cfg.MaxIDsPerRequest {
		chunk := ids[lo:min(lo+c.cfg.MaxIDsPerRequest, len(ids))]
		for page := 1; ; page++ {
			col, err := c.list(ctx, path, url.Values{param: {strings.Join(chunk, ",")}, "page": {strconv.Itoa(page)}, "pageSize": {"100"}})
			if err != nil {
				return nil, err
			}
			out = append(out, col.Items...)
			if page >= col.Meta.TotalPages || len(col.Items) == 0 {
				break
			}
		}
	}
	return out, nil
}

// CheckCredentials reads one small page of jobs.
func (c *Connector) CheckCredentials(ctx context.Context) error {
	if _, err := c.list(ctx, "/job", url.Values{"page": {"1"}, "pageSize": {"10"}}); err != nil {
		return fmt.Errorf("error checking tave credentials: %w", err)
	}
	return nil
}

// cursor is Page.Cursor: the next page of jobs to read and the watermark so
// far, so that a resumed stream reports the same watermark.
type cursor struct {
	Page      int    `json:"page"`
	Watermark string `json:"wm,omitempty"`
}

// Stream reads jobs a page at a time: FULL in creation order (stable while
// records change), INCREMENTAL newest-modified first (sortBy=modified,
// descending), stopping at the first job not modified after
// StreamRequest.Watermark. Page.Watermark is the newest modified stamp seen,
// or the request's watermark when nothing newer was.
//
// An INCREMENTAL stream resumed mid-way can miss a job modified while it
// ran (it moves to the front); the next INCREMENTAL run picks it up.
func (c *Connector) Stream(ctx context.Context, req crm.StreamRequest, fn func(context.Context, crm.Page) error) error {
	cur := cursor{Page: 1}
	if req.Resume != "" {
		if err := json.Unmarshal([]byte(req.Resume), &cur); err != nil || cur.Page < 1 {
			return fmt.Errorf("invalid tave resume cursor %q: %w", req.Resume, crm.ErrInvalidRequest)
		}
	}
	incremental := req.Mode == crm.ModeIncremental
	var since time.Time
	if req.Watermark != "" {
		t, err := time.Parse(time.RFC3339Nano, req.Watermark)
		if err != nil {
			return fmt.Errorf("invalid tave watermark %q: %w", req.Watermark, crm.ErrInvalidRequest)
		}
		since = t
	}
	wm := since
	if cur.Watermark != "" {
		if t, err := time.Parse(time.RFC3339Nano, cur.Watermark); err == nil && t.After(wm) {
			wm = t
		}
	}
	q := url.Values{"pageSize": {strconv.Itoa(c.cfg.PageSize)}, "sortBy": {"created"}, "sortOrder": {"asc"}}
	if incremental {
		q.Set("sortBy", "modified")
		q.Set("sortOrder", "desc")
	}
	for page := cur.Page; ; page++ {
		q.Set("page", strconv.Itoa(page))
		col, err := c.list(ctx, "/job", q)
		if err != nil {
			return err
		}
		rowBase := (page - 1) * c.cfg.PageSize
		jobs, rejects, newest, stop := decodeJobs(col.Items, rowBase, incremental, since)
		p, err := c.join(ctx, jobs)
		if err != nil {
			return err
		}
		p.Rejects = append(rejects, p.Rejects...)
		if newest.After(wm) {
			wm = newest
		}
		if !wm.IsZero() {
			p.Watermark = wm.UTC().Format(time.RFC3339Nano)
		}
		next, _ := json.Marshal(cursor{Page: page + 1, Watermark: p.Watermark})
		p.Cursor = string(next)
		p.TotalEstimate = col.Meta.TotalItems
		if incremental {
			p.TotalEstimate = -1
		}
		if err := fn(ctx, p); err != nil {
			return err
		}
		if stop || page >= col.Meta.TotalPages || len(col.Items) == 0 {
			return nil
		}
	}
}
