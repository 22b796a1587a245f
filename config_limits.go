package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/wedsync/crmhub/resolvers"
)

// Limits are the abuse limits of the API, read from the environment. Every
// variable is listed in the README's Security section with its default.
type Limits struct {
	// MaxComplexity is the highest cost of one operation: every field costs
	// 1, and a connection multiplies its edges and nodes by its page size
	// (CRMHUB_MAX_COMPLEXITY). Defaults to 10,000.
	MaxComplexity int
	// MaxDepth is how deeply selections may nest (CRMHUB_MAX_DEPTH).
	// Defaults to 12.
	MaxDepth int
	// MaxAliases is how many aliased fields one document may hold
	// (CRMHUB_MAX_ALIASES). Defaults to 30.
	MaxAliases int
	// MaxFieldRepeats is how often one field (or fragment spread) may appear
	// in one selection set (CRMHUB_MAX_FIELD_REPEATS). Defaults to 10.
	MaxFieldRepeats int
	// MaxQueryTokens is the GraphQL parser's token limit
	// (CRMHUB_MAX_QUERY_TOKENS). Defaults to 5,000.
	MaxQueryTokens int
	// MaxBodyBytes bounds a JSON request body (CRMHUB_MAX_BODY_BYTES).
	// Defaults to 1 MiB.
	MaxBodyBytes int
	// RateLimitPerMinute is the sustained request rate of one API token
	// (CRMHUB_RATE_LIMIT_PER_MINUTE); 0 turns rate limiting off. Defaults to
	// 600.
	RateLimitPerMinute int
	// RateLimitBurst is how many requests one token may send at once
	// (CRMHUB_RATE_LIMIT_BURST). Defaults to 100.
	RateLimitBurst int
	// AnonRateLimitPerMinute is the sustained request rate of one client IP
	// without a valid token (CRMHUB_ANON_RATE_LIMIT_PER_MINUTE). Defaults
	// to 60.
	AnonRateLimitPerMinute int
	// AnonRateLimitBurst is the burst of one anonymous client IP
	// (CRMHUB_ANON_RATE_LIMIT_BURST). Defaults to 20.
	AnonRateLimitBurst int
	// Introspection turns schema introspection and field suggestions on for
	// every caller (CRMHUB_INTROSPECTION=on); otherwise serve allows them to
	// SUPPORT tokens only. dev always turns them on. Defaults to off.
	Introspection bool
}

// defaultLimits are the limits with nothing set.
func defaultLimits() Limits {
	return Limits{
		MaxComplexity:          resolvers.MaxComplexityDefault,
		MaxDepth:               resolvers.MaxDepthDefault,
		MaxAliases:             resolvers.MaxAliasesDefault,
		MaxFieldRepeats:        resolvers.MaxFieldRepeatsDefault,
		MaxQueryTokens:         resolvers.MaxTokensDefault,
		MaxBodyBytes:           MaxJSONBodyDefault,
		RateLimitPerMinute:     RateLimitPerMinuteDefault,
		RateLimitBurst:         RateLimitBurstDefault,
		AnonRateLimitPerMinute: AnonRateLimitPerMinuteDefault,
		AnonRateLimitBurst:     AnonRateLimitBurstDefault,
	}
}

// loadLimits reads the limits from the environment.
func loadLimits(getenv func(string) string) (Limits, []error) {
	l := defaultLimits()
	var errs []error
	intVar := func(name string, dst *int, lo, hi int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
			if err != nil || n < lo || n > hi {
				errs = append(errs, fmt.Errorf("%s must be a whole number from %d to %d, not %q", name, lo, hi, v))
				return
			}
			*dst = n
		}
	}
	intVar("CRMHUB_MAX_COMPLEXITY", &l.MaxComplexity, 1, 1<<30)
	intVar("CRMHUB_MAX_DEPTH", &l.MaxDepth, 2, 1000)
	intVar("CRMHUB_MAX_ALIASES", &l.MaxAliases, 1, 100000)
	intVar("CRMHUB_MAX_FIELD_REPEATS", &l.MaxFieldRepeats, 1, 100000)
	intVar("CRMHUB_MAX_QUERY_TOKENS", &l.MaxQueryTokens, 100, 1<<24)
	intVar("CRMHUB_MAX_BODY_BYTES", &l.MaxBodyBytes, 1024, 1<<30)
	intVar("CRMHUB_RATE_LIMIT_PER_MINUTE", &l.RateLimitPerMinute, 0, 1<<30)
	intVar("CRMHUB_RATE_LIMIT_BURST", &l.RateLimitBurst, 1, 1<<30)
	intVar("CRMHUB_ANON_RATE_LIMIT_PER_MINUTE", &l.AnonRateLimitPerMinute, 0, 1<<30)
	intVar("CRMHUB_ANON_RATE_LIMIT_BURST", &l.AnonRateLimitBurst, 1, 1<<30)
	switch v := strings.ToLower(strings.TrimSpace(getenv("CRMHUB_INTROSPECTION"))); v {
	case "", "off", "false", "0", "support":
	case "on", "true", "1":
		l.Introspection = true
	default:
		errs = append(errs, fmt.Errorf("CRMHUB_INTROSPECTION must be on or off, not %q", v))
	}
	return l, errs
}
