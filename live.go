package main

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// Tuning of the WebSocket transport.
const (
	// wsReadBufferSize is each connection's read buffer: client messages
	// are small (connection_init, subscribe, pong), and an idle subscriber
	// should cost little.
	wsReadBufferSize = 512
	// wsReadLimit bounds one client message, as gqlgen's transport did.
	wsReadLimit = 1 << 20
	// wsWriteSlice is how long a writer waits on one socket before it sets
	// the rest aside and moves on: a phone that stopped reading holds a
	// writer for at most this long per retry.
	wsWriteSlice = 5 * time.Millisecond
	// wsRetryInterval is how often writes set aside are retried.
	wsRetryInterval = 50 * time.Millisecond
	// wsCloseGrace is how long a connection waits for the peer's close
	// frame after sending its own.
	wsCloseGrace = 2 * time.Second
	// wsInitTimeout is how long a client has to send connection_init.
	wsInitTimeout = 10 * time.Second
)

// liveConns holds the long-lived connections of subscriptions. For
// WebSockets it is the whole transport (see live_conn.go and
// live_stream.go): it keeps every connection, pings them all from one
// ticker so that a phone that dropped off the venue WiFi is noticed, writes
// through a small pool of writer goroutines, shares one execution among
// subscribers of the same operation and view, and closes everything when
// the node shuts down. SSE streams stay on gqlgen's transport; it only
// counts them and cuts them on drain.
type liveConns struct {
	pingInterval   time.Duration
	pongTimeout    time.Duration
	originPatterns []string
	m              *metrics
	// shareableFunc reports whether new subscribers may join a running
	// execution: only while the LISTEN hub is up, since a stream's last
	// payload is current only if no notification was lost.
	shareableFunc func() bool

	mu       sync.Mutex
	ws       map[*wsConn]struct{}
	draining bool
	// drain is cancelled when the node shuts down.
	drain      context.Context
	startDrain context.CancelFunc

	streams streamRegistry
	wq      writeQueue

	// blocked are connections whose last write did not complete in
	// wsWriteSlice; the ticker hands them back to the writers.
	blockedMu sync.Mutex
	blocked   map[*wsConn]struct{}

	stats liveStats

	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// liveStats are the transport's counters, exported by metrics.
type liveStats struct {
	// subscribers counts open subscription operations on WebSockets.
	subscribers atomic.Int64
	// sseStreams counts open SSE requests.
	sseStreams atomic.Int64
	// sent counts run states written to subscribers (WebSocket) or
	// rendered for them (SSE).
	sent atomic.Int64
	// coalesced counts payloads a subscriber had pending that a newer one
	// replaced before it was written.
	coalesced atomic.Int64
	// streams counts running executions on WebSockets.
	streams atomic.Int64
	// executions counts executions started on WebSockets.
	executions atomic.Int64
}

func newLiveConns(cfg *Config, m *metrics, shareable func() bool) *liveConns {
	drain, startDrain := context.WithCancel(context.Background())
	l := &liveConns{
		pingInterval:   cfg.KeepAliveInterval,
		pongTimeout:    cfg.KeepAliveTimeout,
		originPatterns: cfg.AllowedOrigins,
		m:              m,
		shareableFunc:  shareable,
		ws:             map[*wsConn]struct{}{},
		drain:          drain,
		startDrain:     startDrain,
		blocked:        map[*wsConn]struct{}{},
		stopped:        make(chan struct{}),
	}
	l.streams.byKey = map[string]*liveStream{}
	l.wq.cond = sync.NewCond(&l.wq.mu)
	// Writes never wait on a socket (a full one is set aside), so one
	// writer per core keeps every core busy.
	for range max(2, runtime.GOMAXPROCS(0)) {
		l.wg.Add(1)
		go l.writer()
	}
	l.wg.Add(1)
	go l.ticker()
	return l
}

// stop ends the writers and the ticker; connections still open are closed.
func (l *liveConns) stop() {
	l.stopOnce.Do(func() {
		l.shutdown()
		close(l.stopped)
		l.wq.close()
		l.wg.Wait()
		l.mu.Lock()
		conns := make([]*wsConn, 0, len(l.ws))
		for c := range l.ws {
			conns = append(conns, c)
		}
		l.mu.Unlock()
		for _, c := range conns {
			c.kill()
		}
	})
}

func (l *liveConns) shareable() bool { return l.shareableFunc == nil || l.shareableFunc() }

// count is the middleware that counts open SSE streams and ends them when
// the node drains. WebSockets are counted by the transport itself: their
// HTTP handler returns as soon as the connection is upgraded.
func (l *liveConns) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" || !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		// A draining node cuts SSE streams without gqlgen's "complete"
		// event, so that EventSource-style clients reconnect.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(l.drain, cancel)
		defer stop()
		r = r.WithContext(ctx)
		w = &drainingWriter{ResponseWriter: w, ctx: ctx}
		g := l.m.liveConns.WithLabelValues("sse")
		g.Inc()
		defer g.Dec()
		l.stats.sseStreams.Add(1)
		defer l.stats.sseStreams.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// add registers an accepted connection; it refuses one while draining.
func (l *liveConns) add(c *wsConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.draining {
		return false
	}
	l.ws[c] = struct{}{}
	l.m.liveConns.WithLabelValues("websocket").Inc()
	return true
}

func (l *liveConns) forget(c *wsConn) {
	l.mu.Lock()
	_, ok := l.ws[c]
	delete(l.ws, c)
	l.mu.Unlock()
	if ok {
		l.m.liveConns.WithLabelValues("websocket").Dec()
	}
	l.blockedMu.Lock()
	delete(l.blocked, c)
	l.blockedMu.Unlock()
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
	conns := make([]*wsConn, 0, len(l.ws))
	for c := range l.ws {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Close frames first, then end the executions: a stream that ended
	// first would send "complete", and a client told its subscription is
	// complete does not resubscribe after it reconnects.
	for _, c := range conns {
		c.closeWith(closeServiceRestart, "server restarting")
	}
	l.startDrain()
}

// ticker is the transport's one timer: it retries writes set aside and,
// every quarter of the keep-alive interval (or timeout, if shorter), pings
// the connections that are due and closes those whose peer has not
// answered within the timeout. One goroutine for every connection, rather
// than one (or a timer) per connection.
func (l *liveConns) ticker() {
	defer l.wg.Done()
	t := time.NewTicker(wsRetryInterval)
	defer t.Stop()
	sweepEvery := max(min(l.pingInterval, l.pongTimeout)/4, 10*time.Millisecond)
	var lastSweep time.Time
	var conns []*wsConn
	for {
		select {
		case <-l.stopped:
			return
		case now := <-t.C:
			l.retryBlocked(now)
			if now.Sub(lastSweep) < sweepEvery {
				continue
			}
			lastSweep = now
			l.mu.Lock()
			conns = conns[:0]
			for c := range l.ws {
				conns = append(conns, c)
			}
			l.mu.Unlock()
			for _, c := range conns {
				c.keepAlive(now)
			}
			clear(conns)
		}
	}
}

func (l *liveConns) retryBlocked(now time.Time) {
	l.blockedMu.Lock()
	if len(l.blocked) == 0 {
		l.blockedMu.Unlock()
		return
	}
	conns := make([]*wsConn, 0, len(l.blocked))
	for c := range l.blocked {
		conns = append(conns, c)
	}
	clear(l.blocked)
	l.blockedMu.Unlock()
	for _, c := range conns {
		c.retryWrite(now)
	}
}

func (l *liveConns) setBlocked(c *wsConn) {
	l.blockedMu.Lock()
	l.blocked[c] = struct{}{}
	l.blockedMu.Unlock()
}

// writer is one of the pool's goroutines: it flushes connections that have
// something to send, one at a time.
func (l *liveConns) writer() {
	defer l.wg.Done()
	batch := make([]*wsConn, 0, writerBatch)
	for {
		batch = l.wq.popMany(batch[:0], writerBatch)
		if len(batch) == 0 {
			return
		}
		var sent int64
		for i, c := range batch {
			sent += c.flush()
			batch[i] = nil
		}
		l.stats.sent.Add(sent)
	}
}

// writerBatch is how many connections a writer takes from the queue at
// once: one lock per batch, and one update of the shared counters.
const writerBatch = 32

// writeQueue is the FIFO of connections with something to send. A
// connection is in it at most once (wsConn.queued).
type writeQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []*wsConn
	head   int
	closed bool
}

func (q *writeQueue) push(c *wsConn) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *writeQueue) pushMany(cs []*wsConn) {
	if len(cs) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, cs...)
	q.mu.Unlock()
	q.cond.Broadcast()
}

// popMany appends up to n queued connections to dst, waiting for one if
// there is none; it returns dst empty once the queue is closed and empty.
func (q *writeQueue) popMany(dst []*wsConn, n int) []*wsConn {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.items) && !q.closed {
		q.cond.Wait()
	}
	end := min(q.head+n, len(q.items))
	dst = append(dst, q.items[q.head:end]...)
	clear(q.items[q.head:end])
	q.head = end
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		if cap(q.items) > 1024 {
			q.items = nil // do not keep a burst's array for ever
		}
	}
	return dst
}

func (q *writeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
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
