package crm

import "time"

// HTTPPolicy tunes the HTTP behaviour the API connectors share: timeouts,
// retries with jittered exponential backoff, Retry-After, a response size
// cap. Every zero field takes its default, so the zero value is the
// production policy; tests shrink the delays.
type HTTPPolicy struct {
	// Timeout bounds one attempt, reading the body included. Defaults to 30
	// seconds.
	Timeout time.Duration
	// MaxAttempts is how many times one request is tried before the stream
	// fails with ErrUnavailable. Defaults to 8.
	MaxAttempts int
	// BackoffMin is the first retry's delay; it doubles per retry up to
	// BackoffMax, jittered by ±50%. Defaults to 250 ms.
	BackoffMin time.Duration
	// BackoffMax caps the retry delay. Defaults to 20 seconds.
	BackoffMax time.Duration
	// MaxRetryAfter is the longest Retry-After a connector waits out; a
	// longer one fails the request with ErrUnavailable at once. Defaults to
	// 2 minutes.
	MaxRetryAfter time.Duration
	// MaxResponseBytes caps one response body. Defaults to 16 MiB.
	MaxResponseBytes int64
}
