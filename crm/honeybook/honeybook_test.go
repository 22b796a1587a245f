package honeybook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/crm/honeybook"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testBundle struct {
	sim   *crmsim.Simulator
	url   string
	clock *clock
}

func setup(t *testing.T, cfg crmsim.Config, wrap ...func(http.Handler) http.Handler) *testBundle {
	t.Helper()
	clk := &clock{now: epoch}
	if cfg.NowFunc == nil {
		cfg.NowFunc = clk.Now
		cfg.ChangeEpoch = epoch
	}
	sim := crmsim.New(cfg)
	var h http.Handler = sim
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testBundle{sim: sim, url: srv.URL, clock: clk}
}

func (b *testBundle) connector(t *testing.T, clientID string, mod ...func(*honeybook.Config)) *honeybook.Connector {
	t.Helper()
	cfg := honeybook.Config{
		BaseURL: b.url + "/honeybook/api/v3", TokenURL: b.url + "/honeybook/oauth2/token",
		ClientID: clientID, ClientSecret: "s3cret-value", RequestsPerMinute: -1, Concurrency: 8,
		HTTP: crm.HTTPPolicy{Timeout: 2 * time.Second, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 12},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := honeybook.New(cfg)
	require.NoError(t, err)
	return c
}

type result struct {
	clients []crm.Client
	rejects []crm.Reject
	pages   []crm.Page
}

var errStop = context.Canceled

func read(ctx context.Context, c crm.Connector, req crm.StreamRequest, maxPages int, each ...func()) (result, error) {
	var r result
	err := c.Stream(ctx, req, func(_ context.Context, p crm.Page) error {
		r.clients = append(r.clients, p.Clients...)
		r.rejects = append(r.rejects, p.Rejects...)
		p.Clients, p.Rejects = nil, nil
		r.pages = append(r.pages, p)
		for _, f := range each {
			f()
		}
		if maxPages > 0 && len(r.pages) == maxPages {
			return errStop
		}
		return nil
	})
	return r, err
}

func requireExactly(t *testing.T, clients []crm.Client, want []int) {
	t.Helper()
	seen := map[string]int{}
	for _, c := range clients {
		seen[c.ExternalID]++
	}
	require.Len(t, clients, len(want))
	for _, i := range want {
		require.Equal(t, 1, seen[crmsim.HoneyBookProjectID(i)], "record %d", i)
	}
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestFullRead(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 100, 101, 5000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			b := setup(t, crmsim.Config{})
			r, err := read(t.Context(), b.connector(t, "demo-"+strconv.Itoa(n)), crm.StreamRequest{Mode: crm.ModeFull}, 0)
			require.NoError(t, err)
			require.Empty(t, r.rejects)
			requireExactly(t, r.clients, indexes(n))
			require.Equal(t, n, r.pages[0].TotalEstimate)
			if n > 0 {
				c := r.clients[0]
				require.NotEmpty(t, c.FirstName)
				require.True(t, json.Valid(c.Raw))
				require.NotEmpty(t, c.PartnerFirstName)
				require.NotEmpty(t, c.EmailNormalized)
				require.Regexp(t, `^\+1\d{10}$`, c.Phone)
				require.NotNil(t, c.EventDate)
				require.NotEmpty(t, c.Venue)
				require.NotEmpty(t, c.Stage)
				require.NotNil(t, c.SourceCreatedAt)
			}
		})
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	c := b.connector(t, "demo-250", func(c *honeybook.Config) { c.PageSize = 40 })
	first, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 2)
	require.ErrorIs(t, err, errStop)
	rest, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull, Resume: first.pages[1].Cursor}, 0)
	require.NoError(t, err)
	requireExactly(t, append(first.clients, rest.clients...), indexes(250))
}

func TestIncremental(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{ChangeInterval: time.Minute, CreatedPerInterval: 4})
	const id = "demo-300+changing"
	c := b.connector(t, id)
	full, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, full.clients, indexes(300))
	wm := full.pages[len(full.pages)-1].Watermark
	require.NotEmpty(t, wm)

	inc, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeIncremental, Watermark: wm}, 0)
	require.NoError(t, err)
	require.Empty(t, inc.clients)
	require.Equal(t, wm, inc.pages[len(inc.pages)-1].Watermark)

	b.clock.Add(3*time.Minute + time.Second)
	since, err := time.Parse(time.RFC3339Nano, wm)
	require.NoError(t, err)
	want, err := b.sim.CreatedSince(id, since)
	require.NoError(t, err)
	require.Len(t, want, 12)
	inc, err = read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeIncremental, Watermark: wm}, 0)
	require.NoError(t, err)
	requireExactly(t, inc.clients, want)
	require.Greater(t, inc.pages[len(inc.pages)-1].Watermark, wm)
}

func TestTokenRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{TokenTTL: 5 * time.Minute})
	c := b.connector(t, "demo-250", func(c *honeybook.Config) { c.PageSize = 50 })
	// The simulator's clock jumps past the token's expiry after every page;
	// the connector still thinks the token is fresh, gets a 401, and
	// refreshes once.
	r, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0, func() { b.clock.Add(6 * time.Minute) })
	require.NoError(t, err)
	requireExactly(t, r.clients, indexes(250))
}

func TestRefreshOnceThenFail(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if strings.HasSuffix(r.URL.Path, "/token") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":300}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":true,"is_timeout":false,"error_type":"HBInvalidJWTError","error_message":"bad token","error_data":{"fields":[]}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := honeybook.New(honeybook.Config{BaseURL: srv.URL + "/api/v3", TokenURL: srv.URL + "/oauth2/token", ClientID: "x", ClientSecret: "y"})
	require.NoError(t, err)
	_, err = read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.ErrorIs(t, err, crm.ErrAuth)
	require.ErrorContains(t, err, "HBInvalidJWTError")
	require.Equal(t, int32(4), requests.Load()) // token, 401, token, 401
}

func TestClientAssertion(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	c := b.connector(t, "demo-20", func(c *honeybook.Config) {
		c.ClientSecret = ""
		c.ClientAssertionFunc = honeybook.HS256Assertion("demo-20", c.TokenURL, []byte("key"))
	})
	r, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, r.clients, indexes(20))
}

func TestFlaky(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{StallDuration: time.Second, NowFunc: time.Now})
	c := b.connector(t, "demo-120+flaky", func(c *honeybook.Config) { c.HTTP.Timeout = 300 * time.Millisecond })
	r, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	require.Empty(t, r.rejects)
	requireExactly(t, r.clients, indexes(120))
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	t.Run("UnderQuota", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crmsim.Config{RateLimitQuota: 20, RateLimitWindow: time.Second, NowFunc: time.Now})
		const id = "demo-40+ratelimited"
		r, err := read(t.Context(), b.connector(t, id, func(c *honeybook.Config) { c.RequestsPerMinute = 1140 }), crm.StreamRequest{Mode: crm.ModeFull}, 0)
		require.NoError(t, err)
		requireExactly(t, r.clients, indexes(40))
		refused, peak := b.sim.RateLimited(id)
		require.Zero(t, refused)
		require.LessOrEqual(t, peak, 20)
	})
	t.Run("RetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crmsim.Config{RateLimitQuota: 20, RateLimitWindow: time.Second, NowFunc: time.Now})
		const id = "demo-40+ratelimited"
		r, err := read(t.Context(), b.connector(t, id), crm.StreamRequest{Mode: crm.ModeFull}, 0)
		require.NoError(t, err)
		requireExactly(t, r.clients, indexes(40))
		refused, _ := b.sim.RateLimited(id)
		require.Positive(t, refused)
	})
}

func TestRevoked(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	const id = "demo-100+revoked"
	_, err := read(t.Context(), b.connector(t, id), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.ErrorIs(t, err, crm.ErrAuth)
	require.NotContains(t, err.Error(), "s3cret-value")
	require.LessOrEqual(t, b.sim.Requests(id), 2)
	require.ErrorIs(t, b.connector(t, id).CheckCredentials(t.Context()), crm.ErrAuth)
}

func TestMessy(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	const id = "demo-1500+messy"
	want, err := b.sim.Expect(id)
	require.NoError(t, err)
	require.Positive(t, want.Messy)
	r, err := read(t.Context(), b.connector(t, id), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	require.Len(t, r.clients, want.Good)
	require.Len(t, r.rejects, want.Messy)
	for _, rej := range r.rejects {
		_, bad := want.IsMessy(rej.Row - 1)
		require.True(t, bad, "reject %+v", rej)
		require.Equal(t, crmsim.HoneyBookProjectID(rej.Row-1), rej.ExternalID)
		require.NotEmpty(t, rej.Reason)
	}
}

func TestMembersNotPermitted(t *testing.T) {
	t.Parallel()
	hidden := crmsim.HoneyBookWorkspaceID(3)
	b := setup(t, crmsim.Config{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, hidden+"/members") {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"error":true,"is_timeout":false,"error_type":"HBObjectNotFoundError","error_message":"not found","error_data":{"fields":[]}}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r, err := read(t.Context(), b.connector(t, "demo-10"), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	require.Len(t, r.clients, 9)
	require.Len(t, r.rejects, 1)
	require.Equal(t, 4, r.rejects[0].Row)
	require.Contains(t, r.rejects[0].Reason, "no permission")
}

func TestIsTimeoutRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := setup(t, crmsim.Config{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/projects") && calls.Add(1) <= 2 {
				// A 400 would be permanent, but is_timeout says otherwise.
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":true,"is_timeout":true,"error_type":"HBTimeoutError","error_message":"timed out","error_data":{"fields":[]}}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	r, err := read(t.Context(), b.connector(t, "demo-5"), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, r.clients, indexes(5))
}
