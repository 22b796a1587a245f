package crmsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm/crmsim"
)

func setup(t *testing.T, cfg crmsim.Config) (*crmsim.Simulator, string) {
	t.Helper()
	sim := crmsim.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/sim/", http.StripPrefix("/sim", sim))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/sim"
}

func get(t *testing.T, u string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), string(body))
	return resp, m
}

func token(t *testing.T, base, clientID string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/honeybook/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"x"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(t, "Bearer", tok.TokenType)
	require.Positive(t, tok.ExpiresIn)
	return tok.AccessToken
}

func TestTaveShapes(t *testing.T) {
	t.Parallel()
	_, base := setup(t, crmsim.Config{})
	resp, body := get(t, base+"/tave/api/v2/job?page=2&pageSize=10", "X-API-KEY", "demo-25")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "job-collection", body["type"])
	require.Equal(t, map[string]any{"currentPage": 2.0, "totalPages": 3.0, "totalItems": 25.0, "rows": 10.0}, body["meta"])
	items := body["items"].([]any)
	require.Len(t, items, 10)
	job := items[0].(map[string]any)
	require.Equal(t, crmsim.TaveJobID(10), job["id"])
	require.Regexp(t, `^[0-9a-hjkmnp-tv-z]{26}$`, job["id"])
	for _, f := range []string{"name", "eventDate", "stage", "closed", "jobTypeName", "leadSourceName", "guestCount", "totalRevenue", "created", "modified", "links"} {
		require.Contains(t, job, f)
	}

	// Bearer works as well as X-API-KEY.
	resp, _ = get(t, base+"/tave/api/v2/address-book?pageSize=10", "Authorization", "Bearer demo-3")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, size := range []string{"101", "9", "x"} {
		resp, body = get(t, base+"/tave/api/v2/job?pageSize="+size, "X-API-KEY", "demo-25")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "validation-error", body["type"])
		require.Equal(t, 400.0, body["status"])
		require.NotEmpty(t, body["title"])
		require.NotEmpty(t, body["detail"])
	}
	resp, body = get(t, base+"/tave/api/v2/job")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, 401.0, body["status"])
}

func TestTaveMillionTenant(t *testing.T) {
	t.Parallel()
	_, base := setup(t, crmsim.Config{})
	resp, body := get(t, base+"/tave/api/v2/job?page=10000&pageSize=100", "X-API-KEY", "demo-1000000")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	items := body["items"].([]any)
	require.Len(t, items, 100)
	require.Equal(t, crmsim.TaveJobID(999_999), items[99].(map[string]any)["id"])
	resp, body = get(t, base+"/tave/api/v2/job?page=1&pageSize=10&sortBy=modified", "X-API-KEY", "demo-1000000+changing")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, body["items"], 10)
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	_, a := setup(t, crmsim.Config{})
	_, b := setup(t, crmsim.Config{})
	_, x := get(t, a+"/tave/api/v2/address-book?page=3&pageSize=50", "X-API-KEY", "demo-500")
	_, y := get(t, b+"/tave/api/v2/address-book?page=3&pageSize=50", "X-API-KEY", "demo-500")
	require.Equal(t, x, y)
}

func TestWeddingSeason(t *testing.T) {
	t.Parallel()
	_, base := setup(t, crmsim.Config{})
	season := 0
	for page := 1; page <= 10; page++ {
		_, body := get(t, base+"/tave/api/v2/job?pageSize=100&page="+strconv.Itoa(page), "X-API-KEY", "demo-1000")
		for _, it := range body["items"].([]any) {
			d, err := time.Parse(time.DateOnly, it.(map[string]any)["eventDate"].(string))
			require.NoError(t, err)
			require.Equal(t, time.Saturday, d.Weekday())
			if d.Month() >= time.May && d.Month() <= time.October {
				season++
			}
		}
	}
	require.Greater(t, season, 700, "most weddings fall May–October")
}

func TestHoneyBookShapes(t *testing.T) {
	t.Parallel()
	_, base := setup(t, crmsim.Config{})
	tok := token(t, base, "demo-30")
	resp, body := get(t, base+"/honeybook/api/v3/projects?page=2&per_page=20", "Authorization", "Bearer "+tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, map[string]any{"page": 2.0, "per_page": 20.0, "total_items": 30.0, "total_pages": 2.0, "last_page": true}, body["pagination"])
	data := body["data"].([]any)
	require.Len(t, data, 10)
	p := data[0].(map[string]any)
	require.Regexp(t, `^[0-9a-f]{24}$`, p["id"])
	for _, f := range []string{"name", "project_date", "project_location", "guest_count", "budget", "project_type_id", "lead_source_open_text"} {
		require.Contains(t, p, f)
	}
	resp, body = get(t, base+"/honeybook/api/v3/projects", "Authorization", "Bearer "+tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 25.0, body["pagination"].(map[string]any)["per_page"], "per_page defaults to 25")

	ws := p["workspace_id"].(string)
	_, body = get(t, base+"/honeybook/api/v3/workspaces/"+ws+"/members?include=contact", "Authorization", "Bearer "+tok)
	members := body["data"].([]any)
	require.Len(t, members, 3)
	require.Equal(t, "client", members[0].(map[string]any)["contact"].(map[string]any)["kind"])

	requireEnvelope := func(resp *http.Response, body map[string]any, status int, typ string) {
		t.Helper()
		require.Equal(t, status, resp.StatusCode)
		require.Equal(t, true, body["error"])
		require.Contains(t, body, "is_timeout")
		require.Equal(t, typ, body["error_type"])
		require.NotEmpty(t, body["error_message"])
		require.Contains(t, body, "error_data")
	}
	resp, body = get(t, base+"/honeybook/api/v3/projects?per_page=101", "Authorization", "Bearer "+tok)
	requireEnvelope(resp, body, http.StatusBadRequest, "HBValidationError")
	resp, body = get(t, base+"/honeybook/api/v3/projects", "Authorization", "Bearer nope")
	requireEnvelope(resp, body, http.StatusUnauthorized, "HBInvalidJWTError")
	resp, body = get(t, base+"/honeybook/api/v3/workspaces/000000000000000000000000/members", "Authorization", "Bearer "+tok)
	requireEnvelope(resp, body, http.StatusNotFound, "HBObjectNotFoundError")
}

func TestTokenExpires(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	_, base := setup(t, crmsim.Config{NowFunc: clock, TokenTTL: time.Minute})
	tok := token(t, base, "demo-3")
	resp, _ := get(t, base+"/honeybook/api/v3/projects", "Authorization", "Bearer "+tok)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	now = now.Add(2 * time.Minute)
	resp, body := get(t, base+"/honeybook/api/v3/projects", "Authorization", "Bearer "+tok)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body["error_message"], "expired")
}

func TestRetryAfterOnEvery429(t *testing.T) {
	t.Parallel()
	sim, base := setup(t, crmsim.Config{RateLimitQuota: 5, RateLimitWindow: time.Hour, FlakyRate: 0.5})
	const key = "demo-10+ratelimited+flaky"
	seen := 0
	for range 40 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/tave/api/v2/job", nil)
		require.NoError(t, err)
		req.Header.Set("X-API-KEY", key)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		cancel()
		if err != nil {
			continue // a reset or a stall
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			seen++
			require.NotEmpty(t, resp.Header.Get("Retry-After"))
		}
	}
	require.Positive(t, seen)
	refused, _ := sim.RateLimited(key)
	require.Positive(t, refused)

	// HoneyBook's 429s carry it too.
	_, hbase := setup(t, crmsim.Config{RateLimitQuota: 1, RateLimitWindow: time.Hour})
	resp, err := http.PostForm(hbase+"/honeybook/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-1+ratelimited"}, "client_secret": {"x"}})
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = http.PostForm(hbase+"/honeybook/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-1+ratelimited"}, "client_secret": {"x"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
}

func TestRevoked(t *testing.T) {
	t.Parallel()
	_, base := setup(t, crmsim.Config{})
	resp, _ := get(t, base+"/tave/api/v2/job", "X-API-KEY", "demo-10+revoked")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	r, err := http.PostForm(base+"/honeybook/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-10+revoked"}, "client_secret": {"x"}})
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusUnauthorized, r.StatusCode)
}

func TestExpect(t *testing.T) {
	t.Parallel()
	e, err := crmsim.Expect("demo-10000+messy")
	require.NoError(t, err)
	require.Equal(t, 10000, e.Total)
	require.InDelta(t, 200, e.Messy, 60)
	require.Equal(t, e.Total-e.Messy, e.Good)
	require.Equal(t, 10000, crmsim.ExpectedClients("demo-10000"))
	require.Equal(t, -1, crmsim.ExpectedClients("bogus"))
	_, err = crmsim.Expect("demo-5+weird")
	require.ErrorContains(t, err, "unknown suffix")
}
