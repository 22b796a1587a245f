package resolvers

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/graph/model"
)

// Page sizes by network quality (DESIGN.md "Adaptive page sizes").
const (
	PageSizeSlow   = 10
	PageSizeMedium = 50
	PageSizeFast   = 100
	PageSizeMax    = 100
)

func sizeFor(n model.NetworkQuality) int {
	switch n {
	case model.NetworkQualitySlow:
		return PageSizeSlow
	case model.NetworkQualityFast:
		return PageSizeFast
	default:
		return PageSizeMedium
	}
}

type hintKey struct{}

// NetworkFromHints reads the HTTP client hints a Chromium browser sends once
// it has seen Accept-CH: Save-Data: on or ECT slow-2g/2g/3g → SLOW; ECT 4g
// with Downlink under 5 Mbps or RTT over 300 ms → MEDIUM; otherwise FAST.
// ok is false when the request carries no hint at all.
func NetworkFromHints(h http.Header) (n model.NetworkQuality, ok bool) {
	if strings.EqualFold(strings.TrimSpace(h.Get("Save-Data")), "on") {
		return model.NetworkQualitySlow, true
	}
	ect := strings.ToLower(strings.TrimSpace(h.Get("ECT")))
	downlink, hasDownlink := parseHintFloat(h.Get("Downlink"))
	rtt, hasRTT := parseHintFloat(h.Get("RTT"))
	switch ect {
	case "slow-2g", "2g", "3g":
		return model.NetworkQualitySlow, true
	}
	if (hasDownlink && downlink < 5) || (hasRTT && rtt > 300) {
		return model.NetworkQualityMedium, true
	}
	if ect != "" || hasDownlink || hasRTT {
		return model.NetworkQualityFast, true
	}
	return "", false
}

func parseHintFloat(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f >= 0
}

// WithClientHints puts the request's network quality, from its client
// hints, in the context, and asks browsers to send the hints.
func WithClientHints(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Accept-CH", "ECT, Downlink, RTT, Save-Data")
		// The answer depends on these headers: shared caches must key on them.
		w.Header().Add("Vary", "ECT, Downlink, RTT, Save-Data")
		if n, ok := NetworkFromHints(r.Header); ok {
			r = r.WithContext(context.WithValue(r.Context(), hintKey{}, n))
		}
		next.ServeHTTP(w, r)
	})
}

// pageRequest is a connection's arguments, decided.
type pageRequest struct {
	params  db.PageParams
	network model.NetworkQuality
}

// decidePage picks the page size in DESIGN.md's order: explicit first/last
// clamped to 1..100, then the network argument, then client hints, then
// MEDIUM; and decodes the cursors.
func decidePage(ctx context.Context, first, last *int, after, before *string, network *model.NetworkQuality) (*pageRequest, error) {
	if first != nil && last != nil {
		return nil, errBadInput("pass first or last, not both")
	}
	req := &pageRequest{network: model.NetworkQualityMedium}
	if n, ok := ctx.Value(hintKey{}).(model.NetworkQuality); ok {
		req.network = n
	}
	if network != nil {
		req.network = *network
	}
	req.params.Limit = sizeFor(req.network)
	switch {
	case first != nil:
		req.params.Limit = clamp(*first, 1, PageSizeMax)
	case last != nil:
		req.params.Limit = clamp(*last, 1, PageSizeMax)
		req.params.Backward = true
	case before != nil && after == nil:
		// "before" alone pages backwards, as Relay clients expect.
		req.params.Backward = true
	}
	var err error
	if req.params.AfterID, err = decodeCursor(after); err != nil {
		return nil, err
	}
	if req.params.BeforeID, err = decodeCursor(before); err != nil {
		return nil, err
	}
	return req, nil
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

// Cursors are opaque: base64url of "c:<row id>".
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c *string) (*int64, error) {
	if c == nil {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(*c)
	if err != nil || !strings.HasPrefix(string(raw), "c:") {
		return nil, errBadInput("malformed cursor")
	}
	id, err := strconv.ParseInt(string(raw[2:]), 10, 64)
	if err != nil {
		return nil, errBadInput("malformed cursor")
	}
	return &id, nil
}

// pageInfo describes a page of rows whose ids id returns.
func pageInfo[T any](res db.PageResult, rows []T, id func(T) int64) *model.PageInfo {
	info := &model.PageInfo{HasNextPage: res.HasNext, HasPreviousPage: res.HasPrevious}
	if len(rows) > 0 {
		start, end := encodeCursor(id(rows[0])), encodeCursor(id(rows[len(rows)-1]))
		info.StartCursor, info.EndCursor = &start, &end
	}
	return info
}
