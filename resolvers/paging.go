package resolvers

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

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

// hints is what WithClientHints learned from a request's client hints, and
// whether a connection of the response fell back on them (the response then
// varies with them).
type hints struct {
	network  model.NetworkQuality
	present  bool
	consumed atomic.Bool
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

// hintHeaders are the client hints the page size depends on.
const hintHeaders = "ECT, Downlink, RTT, Save-Data"

// WithClientHints puts the request's network quality, from its client
// hints, in the context, and asks browsers to send the hints (Accept-CH).
// A response whose page size fell back on the hints (no first/last, no
// network argument) says "Vary: ECT, Downlink, RTT, Save-Data", so a shared
// cache keys it on them; every other response leaves them out of Vary and
// stays cacheable across networks.
func WithClientHints(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Accept-CH", hintHeaders)
		h := &hints{}
		h.network, h.present = NetworkFromHints(r.Header)
		r = r.WithContext(context.WithValue(r.Context(), hintKey{}, h))
		next.ServeHTTP(&varyWriter{ResponseWriter: w, h: h}, r)
	})
}

// varyWriter adds the hints to Vary when the response is written, after
// the resolvers ran and know whether they used them.
type varyWriter struct {
	http.ResponseWriter
	h       *hints
	written bool
}

func (v *varyWriter) writeVary() {
	if v.written {
		return
	}
	v.written = true
	if v.h.consumed.Load() {
		v.Header().Add("Vary", hintHeaders)
	}
}

func (v *varyWriter) WriteHeader(code int) {
	v.writeVary()
	v.ResponseWriter.WriteHeader(code)
}

func (v *varyWriter) Write(b []byte) (int, error) {
	v.writeVary()
	return v.ResponseWriter.Write(b)
}

// Flush lets SSE stream through.
func (v *varyWriter) Flush() {
	v.writeVary()
	if f, ok := v.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (WebSocket
// upgrades hijack it).
func (v *varyWriter) Unwrap() http.ResponseWriter { return v.ResponseWriter }

// Hijack lets WebSocket upgrades take the connection.
func (v *varyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := v.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// pageSize is a connection's size and direction, decided.
type pageSize struct {
	limit    int
	backward bool
	network  model.NetworkQuality
}

// decideSize picks the page size in DESIGN.md's order: explicit first/last
// clamped to 1..100, then the network argument, then client hints, then
// MEDIUM.
func decideSize(ctx context.Context, first, last *int, after, before *string, network *model.NetworkQuality) (pageSize, error) {
	if first != nil && last != nil {
		return pageSize{}, errBadInput("pass first or last, not both")
	}
	ps := pageSize{network: model.NetworkQualityMedium}
	switch {
	case network != nil:
		ps.network = *network
	case first == nil && last == nil:
		// Only now does the answer depend on the hints (or on their
		// absence): the response must vary with them.
		if h, ok := ctx.Value(hintKey{}).(*hints); ok {
			h.consumed.Store(true)
			if h.present {
				ps.network = h.network
			}
		}
	}
	ps.limit = sizeFor(ps.network)
	switch {
	case first != nil:
		ps.limit = clamp(*first, 1, PageSizeMax)
	case last != nil:
		ps.limit = clamp(*last, 1, PageSizeMax)
		ps.backward = true
	case before != nil && after == nil:
		// "before" alone pages backwards, as Relay clients expect.
		ps.backward = true
	}
	return ps, nil
}

// pageRequest is a connection's arguments, decided.
type pageRequest struct {
	params  db.PageParams
	network model.NetworkQuality
}

// decidePage decides the page size (decideSize) and decodes id cursors.
func decidePage(ctx context.Context, first, last *int, after, before *string, network *model.NetworkQuality) (*pageRequest, error) {
	ps, err := decideSize(ctx, first, last, after, before, network)
	if err != nil {
		return nil, err
	}
	req := &pageRequest{network: ps.network}
	req.params.Limit = ps.limit
	req.params.Backward = ps.backward
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

// hintedNetwork is the network the request's client hints give, without
// marking the answer as depending on them; ok is false without hints.
func hintedNetwork(ctx context.Context) (model.NetworkQuality, bool) {
	h, ok := ctx.Value(hintKey{}).(*hints)
	if !ok || !h.present {
		return "", false
	}
	return h.network, true
}

// hintsUsed reports whether this request's answer depends on its client
// hints.
func hintsUsed(ctx context.Context) bool {
	h, ok := ctx.Value(hintKey{}).(*hints)
	return ok && h.consumed.Load()
}

// markHintsUsed records that the answer depends on the client hints (it
// comes from the response cache, whose entry did).
func markHintsUsed(ctx context.Context) {
	if h, ok := ctx.Value(hintKey{}).(*hints); ok {
		h.consumed.Store(true)
	}
}
