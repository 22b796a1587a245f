package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
)

// Close codes crmhub sends on WebSockets.
const (
	// closeForbidden rejects a connection_init without a valid token, as
	// graphql-transport-ws says (the npm graphql-ws client takes it as
	// fatal and does not retry).
	closeForbidden = 4403
	// closeServiceRestart tells clients the node is shutting down, so they
	// reconnect (to another node) and get the current snapshot there.
	closeServiceRestart = 1012
)

// liveConns tracks the long-lived connections of subscriptions (WebSockets
// and SSE streams): it counts them, pings every WebSocket so that a phone
// that dropped off the venue WiFi is noticed, and closes them all when the
// node shuts down.
type liveConns struct {
	pingInterval time.Duration
	pongTimeout  time.Duration
	accept       coderws.AcceptOptions
	m            *metrics

	mu       sync.Mutex
	ws       map[*liveWebsocketConn]struct{}
	draining bool
	// drain is cancelled when the node shuts down.
	drain      context.Context
	startDrain context.CancelFunc
}

func newLiveConns(cfg *Config, m *metrics) *liveConns {
	drain, startDrain := context.WithCancel(context.Background())
	return &liveConns{
		pingInterval: cfg.KeepAliveInterval,
		pongTimeout:  cfg.KeepAliveTimeout,
		accept:       coderws.AcceptOptions{OriginPatterns: cfg.AllowedOrigins},
		m:            m,
		ws:           map[*liveWebsocketConn]struct{}{},
		drain:        drain,
		startDrain:   startDrain,
	}
}

// count is the middleware that counts open subscription connections.
func (l *liveConns) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := ""
		switch {
		case r.Header.Get("Upgrade") != "":
			kind = "websocket"
		case strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
			kind = "sse"
			// A draining node cuts SSE streams without gqlgen's "complete"
			// event, so that EventSource-style clients reconnect.
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(l.drain, cancel)
			defer stop()
			r = r.WithContext(ctx)
			w = &drainingWriter{ResponseWriter: w, ctx: ctx}
		}
		if kind == "" {
			next.ServeHTTP(w, r)
			return
		}
		g := l.m.liveConns.WithLabelValues(kind)
		g.Inc()
		defer g.Dec()
		next.ServeHTTP(w, r)
	})
}

// shutdown closes every WebSocket with 1012 (service restart) and ends
// every SSE stream, so clients reconnect elsewhere.
func (l *liveConns) shutdown() {
	l.mu.Lock()
	if l.draining {
		l.mu.Unlock()
		return
	}
	l.draining = true
	l.startDrain()
	conns := make([]*liveWebsocketConn, 0, len(l.ws))
	for c := range l.ws {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.WriteClose(closeServiceRestart, "server restarting")
	}
}

// drainingWriter drops what is written after its request was cancelled by
// a drain.
type drainingWriter struct {
	http.ResponseWriter
	ctx context.Context
}

func (d *drainingWriter) Write(p []byte) (int, error) {
	if d.ctx.Err() != nil {
		return 0, d.ctx.Err()
	}
	return d.ResponseWriter.Write(p)
}

func (d *drainingWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok && d.ctx.Err() == nil {
		f.Flush()
	}
}

func (d *drainingWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// Accept implements transport.WebsocketImplementation with
// github.com/coder/websocket, adding protocol-level ping/pong for every
// subprotocol (the legacy graphql-ws has none of its own): a peer that does
// not answer a ping within the timeout is closed, which ends its
// subscriptions and frees their resources.
func (l *liveConns) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	for key, values := range opts.ResponseHeader {
		for _, v := range values {
			w.Header().Add(key, v)
		}
	}
	accept := l.accept
	accept.Subprotocols = slices.Clone(opts.Subprotocols)
	conn, err := coderws.Accept(w, r, &accept)
	if err != nil {
		return nil, err
	}
	c := &liveWebsocketConn{conn: conn, l: l}
	l.mu.Lock()
	if l.draining {
		l.mu.Unlock()
		_ = conn.Close(closeServiceRestart, "server restarting")
		return nil, io.EOF
	}
	l.ws[c] = struct{}{}
	l.mu.Unlock()
	// A timer rather than a goroutine per connection: an idle subscriber
	// costs no stack between pings.
	c.pingTimer = time.AfterFunc(l.pingInterval, c.ping)
	return c, nil
}

func (l *liveConns) forget(c *liveWebsocketConn) {
	l.mu.Lock()
	delete(l.ws, c)
	l.mu.Unlock()
}

// liveWebsocketConn adapts a coder/websocket connection to gqlgen's
// transport.
type liveWebsocketConn struct {
	conn      *coderws.Conn
	l         *liveConns
	pingTimer *time.Timer

	mu            sync.Mutex
	deadline      *time.Timer
	closing       bool
	closed        atomic.Bool
	closeHandover chan struct{}
}

var (
	_ transport.WebsocketConn          = (*liveWebsocketConn)(nil)
	_ transport.WebsocketReadLimiter   = (*liveWebsocketConn)(nil)
	_ transport.WebsocketReadDeadliner = (*liveWebsocketConn)(nil)
)

func (c *liveWebsocketConn) ping() {
	if c.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.l.pongTimeout)
	err := c.conn.Ping(ctx)
	cancel()
	if err != nil {
		// No pong in time: the peer is gone. Closing makes gqlgen's read
		// loop fail, which ends the connection's subscriptions.
		c.l.m.keepAliveTimeouts.Inc()
		_ = c.conn.CloseNow()
		return
	}
	if !c.closed.Load() {
		c.pingTimer.Reset(c.l.pingInterval)
	}
}

// NextReader implements transport.WebsocketConn.
func (c *liveWebsocketConn) NextReader() (int, io.Reader, error) {
	typ, data, err := c.conn.Read(context.Background())
	if err != nil {
		switch coderws.CloseStatus(err) {
		case coderws.StatusNormalClosure, coderws.StatusNoStatusRcvd, coderws.StatusGoingAway:
			return int(typ), nil, transport.ErrWebsocketClosed
		}
		return int(typ), nil, err
	}
	return int(typ), bytes.NewReader(data), nil
}

// WriteJSON implements transport.WebsocketConn.
func (c *liveWebsocketConn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// A write that cannot complete within the keep-alive timeout means a
	// peer that stopped reading; coder/websocket closes the connection
	// when the context expires.
	ctx, cancel := context.WithTimeout(context.Background(), c.l.pingInterval+c.l.pongTimeout)
	defer cancel()
	return c.conn.Write(ctx, coderws.MessageText, data)
}

// WriteClose implements transport.WebsocketConn. coder/websocket's close
// handshake waits up to 5 seconds for the peer, so it runs in the
// background, as gqlgen's own adapter does.
func (c *liveWebsocketConn) WriteClose(code int, reason string) error {
	c.stopTimers()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	done := make(chan struct{})
	c.closeHandover = done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = c.conn.Close(coderws.StatusCode(code), reason)
	}()
	return nil
}

// Close implements transport.WebsocketConn.
func (c *liveWebsocketConn) Close() error {
	c.stopTimers()
	c.mu.Lock()
	handshake := c.closeHandover != nil
	c.mu.Unlock()
	if handshake {
		return nil
	}
	return c.conn.CloseNow()
}

func (c *liveWebsocketConn) stopTimers() {
	if c.closed.Swap(true) {
		return
	}
	c.l.forget(c)
	c.pingTimer.Stop()
	c.mu.Lock()
	if c.deadline != nil {
		c.deadline.Stop()
	}
	c.mu.Unlock()
}

// Subprotocol implements transport.WebsocketConn.
func (c *liveWebsocketConn) Subprotocol() string { return c.conn.Subprotocol() }

// SetReadLimit implements transport.WebsocketReadLimiter.
func (c *liveWebsocketConn) SetReadLimit(limit int64) { c.conn.SetReadLimit(limit) }

// SetReadDeadline implements transport.WebsocketReadDeadliner.
func (c *liveWebsocketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline != nil {
		c.deadline.Stop()
		c.deadline = nil
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		return c.conn.CloseNow()
	}
	c.deadline = time.AfterFunc(d, func() { _ = c.conn.CloseNow() })
	return nil
}
