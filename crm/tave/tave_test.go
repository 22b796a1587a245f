package tave_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/crm/tave"
)

type testBundle struct {
	sim   *crmsim.Simulator
	url   string
	clock *clock
}

// clock is a settable time for "+changing".
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

func setup(t *testing.T, cfg crmsim.Config) *testBundle {
	t.Helper()
	clk := &clock{now: epoch}
	if cfg.NowFunc == nil {
		cfg.NowFunc = clk.Now
		cfg.ChangeEpoch = epoch
	}
	sim := crmsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &testBundle{sim: sim, url: srv.URL + "/tave/api/v2", clock: clk}
}

func (b *testBundle) connector(t *testing.T, key string, mod ...func(*tave.Config)) *tave.Connector {
	t.Helper()
	cfg := tave.Config{
		BaseURL: b.url, APIKey: key, RequestsPerMinute: -1,
		HTTP: crm.HTTPPolicy{Timeout: 2 * time.Second, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 12},
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := tave.New(cfg)
	require.NoError(t, err)
	return c
}

type result struct {
	clients []crm.Client
	rejects []crm.Reject
	pages   []crm.Page
}

func read(ctx context.Context, c crm.Connector, req crm.StreamRequest, maxPages int) (result, error) {
	var r result
	err := c.Stream(ctx, req, func(_ context.Context, p crm.Page) error {
		r.clients = append(r.clients, p.Clients...)
		r.rejects = append(r.rejects, p.Rejects...)
		p.Clients, p.Rejects = nil, nil
		r.pages = append(r.pages, p)
		if maxPages > 0 && len(r.pages) == maxPages {
			return errStop
		}
		return nil
	})
	return r, err
}

var errStop = context.Canceled

// requireExactly checks that clients are exactly records want, once each.
func requireExactly(t *testing.T, clients []crm.Client, want []int) {
	t.Helper()
	seen := map[string]int{}
	for _, c := range clients {
		seen[c.ExternalID]++
	}
	require.Len(t, clients, len(want))
	for _, i := range want {
		require.Equal(t, 1, seen[crmsim.TaveJobID(i)], "record %d", i)
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
			key := "demo-" + strconv.Itoa(n)
			r, err := read(t.Context(), b.connector(t, key), crm.StreamRequest{Mode: crm.ModeFull}, 0)
			require.NoError(t, err)
			require.Empty(t, r.rejects)
			requireExactly(t, r.clients, indexes(n))
			require.NotEmpty(t, r.pages)
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
				require.Equal(t, "USD", c.Currency)
				require.NotEmpty(t, r.pages[len(r.pages)-1].Watermark)
			}
		})
	}
}

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	require.NoError(t, b.connector(t, "demo-5").CheckCredentials(t.Context()))
	require.NoError(t, b.connector(t, "demo-5", func(c *tave.Config) { c.UseBearer = true }).CheckCredentials(t.Context()))
	err := b.connector(t, "not-a-key").CheckCredentials(t.Context())
	require.ErrorIs(t, err, crm.ErrAuth)
	require.NotContains(t, err.Error(), "not-a-key")
}

func TestResume(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	c := b.connector(t, "demo-350", func(c *tave.Config) { c.PageSize = 50 })
	first, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 3)
	require.ErrorIs(t, err, errStop)
	require.Len(t, first.clients, 150)
	rest, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull, Resume: first.pages[2].Cursor}, 0)
	require.NoError(t, err)
	requireExactly(t, append(first.clients, rest.clients...), indexes(350))
	require.Equal(t, first.pages[2].Watermark <= rest.pages[len(rest.pages)-1].Watermark, true)
}

func TestIncremental(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{ChangeInterval: time.Minute, ChangedPerInterval: 7, CreatedPerInterval: 3})
	const key = "demo-500+changing"
	c := b.connector(t, key)
	full, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, full.clients, indexes(500))
	wm := full.pages[len(full.pages)-1].Watermark

	// Nothing changed yet: nothing comes back, and the watermark holds.
	inc, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeIncremental, Watermark: wm}, 0)
	require.NoError(t, err)
	require.Empty(t, inc.clients)
	require.Equal(t, wm, inc.pages[len(inc.pages)-1].Watermark)

	b.clock.Add(3*time.Minute + time.Second)
	since, err := time.Parse(time.RFC3339Nano, wm)
	require.NoError(t, err)
	want, err := b.sim.ModifiedSince(key, since)
	require.NoError(t, err)
	require.Len(t, want, 3*(7+3))
	inc, err = read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeIncremental, Watermark: wm}, 0)
	require.NoError(t, err)
	requireExactly(t, inc.clients, want)
	wm2 := inc.pages[len(inc.pages)-1].Watermark
	require.Greater(t, wm2, wm)
	require.Equal(t, -1, inc.pages[0].TotalEstimate)

	// New records show up in a FULL read too.
	full, err = read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, full.clients, indexes(509))

	inc, err = read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeIncremental, Watermark: wm2}, 0)
	require.NoError(t, err)
	require.Empty(t, inc.clients)
}

func TestFlaky(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{StallDuration: time.Second, NowFunc: time.Now})
	c := b.connector(t, "demo-300+flaky", func(c *tave.Config) { c.HTTP.Timeout = 300 * time.Millisecond })
	r, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	require.Empty(t, r.rejects)
	requireExactly(t, r.clients, indexes(300))
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	t.Run("UnderQuota", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crmsim.Config{RateLimitQuota: 10, RateLimitWindow: time.Second, NowFunc: time.Now})
		const key = "demo-300+ratelimited"
		start := time.Now()
		r, err := read(t.Context(), b.connector(t, key, func(c *tave.Config) { c.RequestsPerMinute = 540 }), crm.StreamRequest{Mode: crm.ModeFull}, 0)
		require.NoError(t, err)
		requireExactly(t, r.clients, indexes(300))
		refused, peak := b.sim.RateLimited(key)
		require.Zero(t, refused)
		require.LessOrEqual(t, peak, 10)
		require.Greater(t, time.Since(start), time.Second)
	})
	t.Run("RetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, crmsim.Config{RateLimitQuota: 10, RateLimitWindow: time.Second, NowFunc: time.Now})
		const key = "demo-300+ratelimited"
		r, err := read(t.Context(), b.connector(t, key), crm.StreamRequest{Mode: crm.ModeFull}, 0)
		require.NoError(t, err)
		requireExactly(t, r.clients, indexes(300))
		refused, _ := b.sim.RateLimited(key)
		require.Positive(t, refused)
	})
}

func TestRevoked(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	const key = "demo-100+revoked"
	start := time.Now()
	_, err := read(t.Context(), b.connector(t, key), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.ErrorIs(t, err, crm.ErrAuth)
	require.NotContains(t, err.Error(), key)
	require.LessOrEqual(t, b.sim.Requests(key), 2)
	require.Less(t, time.Since(start), time.Second)
}

func TestMessy(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{})
	const key = "demo-2000+messy"
	want, err := b.sim.Expect(key)
	require.NoError(t, err)
	require.Positive(t, want.Messy)
	r, err := read(t.Context(), b.connector(t, key), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	require.Len(t, r.clients, want.Good)
	require.Len(t, r.rejects, want.Messy)
	var good []int
	for i := range want.Total {
		if _, bad := want.IsMessy(i); !bad {
			good = append(good, i)
		}
	}
	requireExactly(t, r.clients, good)
	for _, rej := range r.rejects {
		require.NotEmpty(t, rej.Reason)
		require.Equal(t, crmsim.TaveJobID(rej.Row-1), rej.ExternalID)
		_, bad := want.IsMessy(rej.Row - 1)
		require.True(t, bad, "reject %+v", rej)
		require.NotEmpty(t, rej.Raw)
	}
}

func TestSlow(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{SlowLatency: 20 * time.Millisecond})
	start := time.Now()
	r, err := read(t.Context(), b.connector(t, "demo-150+slow"), crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.NoError(t, err)
	requireExactly(t, r.clients, indexes(150))
	require.Greater(t, time.Since(start), 8*20*time.Millisecond)
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, crmsim.Config{FlakyRate: 1, NowFunc: time.Now, StallDuration: time.Second})
	c := b.connector(t, "demo-10+flaky", func(c *tave.Config) {
		c.HTTP.MaxAttempts = 3
		c.HTTP.Timeout = 100 * time.Millisecond
		c.HTTP.MaxRetryAfter = 10 * time.Millisecond
	})
	_, err := read(t.Context(), c, crm.StreamRequest{Mode: crm.ModeFull}, 0)
	require.ErrorIs(t, err, crm.ErrUnavailable)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	_, err := tave.New(tave.Config{})
	require.ErrorContains(t, err, "API key")
	_, err = tave.New(tave.Config{APIKey: "k", PageSize: 101})
	require.ErrorContains(t, err, "page size")
	c, err := tave.New(tave.Config{APIKey: "k"})
	require.NoError(t, err)
	require.NotNil(t, c)
}
