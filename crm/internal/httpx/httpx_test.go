package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d, ok := ParseRetryAfter("7", now)
	require.True(t, ok)
	require.Equal(t, 7*time.Second, d)
	d, ok = ParseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now)
	require.True(t, ok)
	require.Equal(t, 90*time.Second, d)
	d, ok = ParseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now)
	require.True(t, ok)
	require.Zero(t, d)
	for _, bad := range []string{"", "-1", "soon"} {
		_, ok = ParseRetryAfter(bad, now)
		require.False(t, ok, bad)
	}
}

type testBundle struct {
	calls atomic.Int32
	url   string
}

func setup(t *testing.T, h func(n int32, w http.ResponseWriter)) *testBundle {
	t.Helper()
	b := &testBundle{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { h(b.calls.Add(1), w) }))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func fast(cfg Config) *Client {
	cfg.BackoffMin, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return c
}

func TestRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, func(n int32, w http.ResponseWriter) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusBadGateway)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = w.Write([]byte(`ok`))
		}
	})
	resp, err := fast(Config{}).Do(t.Context(), Request{URL: b.url})
	require.NoError(t, err)
	require.Equal(t, "ok", string(resp.Body))
	require.Equal(t, int32(3), b.calls.Load())
}

func TestGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int32, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	_, err := fast(Config{MaxAttempts: 3}).Do(t.Context(), Request{URL: b.url})
	require.ErrorIs(t, err, crm.ErrUnavailable)
	require.ErrorContains(t, err, "gave up after 3 attempts")
	require.Equal(t, int32(3), b.calls.Load())
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	for status, kind := range map[int]error{401: crm.ErrAuth, 403: crm.ErrAuth, 400: crm.ErrInvalidRequest, 404: crm.ErrInvalidRequest} {
		b := setup(t, func(_ int32, w http.ResponseWriter) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte("key sk_live_123456 refused"))
		})
		_, err := fast(Config{Secrets: []string{"sk_live_123456"}}).Do(t.Context(), Request{URL: b.url})
		require.ErrorIs(t, err, kind)
		require.NotContains(t, err.Error(), "sk_live_123456")
		require.Equal(t, int32(1), b.calls.Load(), "no retry for %d", status)
	}
}

func TestRetryAfterTooLong(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int32, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	_, err := fast(Config{}).Do(t.Context(), Request{URL: b.url})
	require.ErrorIs(t, err, crm.ErrUnavailable)
	require.Equal(t, int32(1), b.calls.Load())
}

func TestResponseCap(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ int32, w http.ResponseWriter) { _, _ = w.Write([]byte(strings.Repeat("x", 2048))) })
	_, err := fast(Config{MaxResponseBytes: 1024}).Do(t.Context(), Request{URL: b.url})
	require.ErrorContains(t, err, "larger than 1024 bytes")
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(n int32, w http.ResponseWriter) {
		if n == 1 {
			time.Sleep(200 * time.Millisecond)
		}
		_, _ = w.Write([]byte("ok"))
	})
	resp, err := fast(Config{Timeout: 50 * time.Millisecond}).Do(t.Context(), Request{URL: b.url})
	require.NoError(t, err)
	require.Equal(t, "ok", string(resp.Body))
}
