package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of HubConfig.
const (
	HubApplicationNameDefault     = "crmhub-listen"
	HubReconnectMinDefault        = 100 * time.Millisecond
	HubReconnectMaxDefault        = 5 * time.Second
	HubHealthCheckIntervalDefault = 15 * time.Second
)

// HubConfig configures a Hub.
type HubConfig struct {
	// ConnConfig is how to reach PostgreSQL; the hub opens one connection of
	// its own with it (a copy), outside any pool, since LISTEN belongs to a
	// session. Required.
	ConnConfig *pgx.ConnConfig
	// Channels are the NOTIFY channels the hub listens on. Required.
	Channels []string
	// ApplicationName names the hub's session in pg_stat_activity, so an
	// operator (or a test) can find it. Defaults to "crmhub-listen".
	ApplicationName string
	// ReconnectMin is the first wait before reconnecting after the
	// connection drops; the wait doubles, with jitter, up to ReconnectMax.
	// Defaults to 100 milliseconds.
	ReconnectMin time.Duration
	// ReconnectMax caps the wait between reconnection attempts. Defaults to
	// 5 seconds.
	ReconnectMax time.Duration
	// HealthCheckInterval is how long the hub waits for a notification
	// before it pings the connection, so that a connection lost without a
	// reset (a network partition) is noticed. Defaults to 15 seconds.
	HealthCheckInterval time.Duration
	// Logger logs connection changes. Defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with its defaults filled in.
func (c HubConfig) WithDefaults() HubConfig {
	c.ApplicationName = cmp.Or(c.ApplicationName, HubApplicationNameDefault)
	c.ReconnectMin = cmp.Or(c.ReconnectMin, HubReconnectMinDefault)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, HubReconnectMaxDefault)
	c.HealthCheckInterval = cmp.Or(c.HealthCheckInterval, HubHealthCheckIntervalDefault)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c HubConfig) validate() error {
	if c.ConnConfig == nil {
		return errors.New("hub: ConnConfig is required")
	}
	if len(c.Channels) == 0 {
		return errors.New("hub: at least one channel is required")
	}
	return nil
}

// HubHandler receives one channel's notifications from a Hub.
type HubHandler interface {
	// Notify is called with each notification's payload, in the order
	// PostgreSQL delivered them, on the hub's own goroutine: it must not
	// block.
	Notify(payload string)
	// Resync is called each time the hub has (re)connected and listens
	// again, including the first time: notifications sent while it was down
	// are lost, so a handler re-reads whatever it needs. It must not block.
	Resync(downSince time.Time)
}

// HubState is what a Hub reports about its connection.
type HubState struct {
	// Connected is true while the hub listens.
	Connected bool
	// Since is when the hub last connected or lost its connection.
	Since time.Time
	// Reconnects counts connections made after the first.
	Reconnects int64
	// LastError is why the connection was last lost, if it was.
	LastError string
}

// Hub holds one dedicated LISTEN connection per node and fans each
// notification out in memory to the handlers of its channel, so that N
// subscribers on a node cost one PostgreSQL session, not N. When the
// connection drops (a PostgreSQL restart, a network failure) it reconnects
// with backoff and asks every handler to resynchronise.
type Hub struct {
	cfg HubConfig

	mu       sync.RWMutex
	handlers map[string][]HubHandler
	state    HubState

	reconnects atomic.Int64
	received   atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
}

// NewHub returns a hub that is not yet started.
func NewHub(cfg HubConfig) (*Hub, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Hub{cfg: cfg, handlers: map[string][]HubHandler{}, state: HubState{Since: time.Now()}}, nil
}

// Handle adds a handler for a channel the hub listens on and returns the
// function that removes it.
func (h *Hub) Handle(channel string, hh HubHandler) (remove func(), err error) {
	known := false
	for _, c := range h.cfg.Channels {
		known = known || c == channel
	}
	if !known {
		return nil, fmt.Errorf("hub: not listening on channel %q", channel)
	}
	h.mu.Lock()
	h.handlers[channel] = append(h.handlers[channel], hh)
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		list := h.handlers[channel]
		for i, x := range list {
			if x == hh {
				h.handlers[channel] = append(list[:i:i], list[i+1:]...)
				return
			}
		}
	}, nil
}

// State returns the hub's connection state.
func (h *Hub) State() HubState {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := h.state
	s.Reconnects = h.reconnects.Load()
	return s
}

// Reconnects counts connections made after the first.
func (h *Hub) Reconnects() int64 { return h.reconnects.Load() }

// Received counts notifications received.
func (h *Hub) Received() int64 { return h.received.Load() }

// Start runs the hub in the background until Stop. It returns at once: the
// first connection is made in the background too, and State tells when it
// is up.
func (h *Hub) Start(ctx context.Context) {
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.done = make(chan struct{})
	go h.loop(ctx)
}

// Stop closes the connection and waits for the hub to end, or for ctx.
func (h *Hub) Stop(ctx context.Context) error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("error stopping the LISTEN hub: %w", ctx.Err())
	}
}

func (h *Hub) loop(ctx context.Context) {
	defer close(h.done)
	// A stopped hub hears nothing: whoever trusts what it heard must know.
	defer h.setDown(errors.New("the LISTEN hub is stopped"))
	backoff := h.cfg.ReconnectMin
	first := true
	for ctx.Err() == nil {
		connected, err := h.listen(ctx, first)
		if ctx.Err() != nil {
			return
		}
		if connected {
			first = false
			backoff = h.cfg.ReconnectMin
		}
		h.setDown(err)
		h.cfg.Logger.Warn("LISTEN connection lost; reconnecting", "err", err, "wait", backoff)
		// Full jitter keeps many nodes from reconnecting in step after a
		// PostgreSQL restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, h.cfg.ReconnectMax)
	}
}

// listen connects, LISTENs, resynchronises the handlers and delivers
// notifications until the connection fails. connected reports whether it
// got as far as listening.
func (h *Hub) listen(ctx context.Context, first bool) (connected bool, err error) {
	cc := h.cfg.ConnConfig.Copy()
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = h.cfg.ApplicationName
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cc)
	cancel()
	if err != nil {
		return false, fmt.Errorf("error connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	for _, ch := range h.cfg.Channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, fmt.Errorf("error listening on %s: %w", ch, err)
		}
	}
	downSince := h.setUp(first)
	h.cfg.Logger.Info("LISTEN connection up", "channels", h.cfg.Channels, "first", first)
	h.mu.RLock()
	for _, list := range h.handlers {
		for _, hh := range list {
			hh.Resync(downSince)
		}
	}
	h.mu.RUnlock()

	for {
		waitCtx, cancel := context.WithTimeout(ctx, h.cfg.HealthCheckInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			h.received.Add(1)
			h.mu.RLock()
			for _, hh := range h.handlers[n.Channel] {
				hh.Notify(n.Payload)
			}
			h.mu.RUnlock()
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Nothing for a while: make sure the session is still there.
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("error pinging the LISTEN connection: %w", err)
			}
		default:
			return true, fmt.Errorf("error waiting for notifications: %w", err)
		}
	}
}

func (h *Hub) setUp(first bool) (downSince time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	downSince = h.state.Since
	if !first {
		h.reconnects.Add(1)
	}
	h.state = HubState{Connected: true, Since: time.Now()}
	return downSince
}

func (h *Hub) setDown(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state.Connected {
		h.state.Since = time.Now()
	}
	h.state.Connected = false
	if err != nil {
		h.state.LastError = err.Error()
	}
}
