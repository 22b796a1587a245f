package db

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TokenRevokedChannel is the NOTIFY channel of token revocations: payload
// the token's id. Nodes drop cached principals when they hear it.
const TokenRevokedChannel = "crmhub_token_revoked"

// VersionWatcher knows every organization's current data version on this
// node: it reads a version once from the database and then follows
// DataVersionChannel on a LISTEN connection of its own. While that
// connection is down it knows nothing (Version says so), because any
// notification may be missed; callers then bypass what they cached.
//
// It is self-contained so it can later be folded into the node's one
// LISTEN hub.
type VersionWatcher struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// onTokenRevoked is called for every revoked token id, and with 0 when
	// the connection comes back (revocations may have been missed).
	onTokenRevoked func(tokenID int64)

	mu       sync.RWMutex
	versions map[int64]int64
	// epoch grows at every (re)connect; a version read from the database
	// under an older epoch is not stored, it may predate a missed
	// notification.
	epoch     atomic.Uint64
	listening atomic.Bool
}

// VersionWatcherConfig configures a VersionWatcher.
type VersionWatcherConfig struct {
	// Pool is where versions are read and whose configuration the LISTEN
	// connection copies.
	Pool *pgxpool.Pool
	// Logger logs connection trouble.
	Logger *slog.Logger
	// OnTokenRevokedFunc is called with a revoked token's id, and with 0
	// after a reconnect. Optional.
	OnTokenRevokedFunc func(tokenID int64)
}

// NewVersionWatcher returns a watcher; Run makes it listen.
func NewVersionWatcher(cfg VersionWatcherConfig) *VersionWatcher {
	return &VersionWatcher{
		pool: cfg.Pool, log: cfg.Logger, onTokenRevoked: cfg.OnTokenRevokedFunc,
		versions: map[int64]int64{},
	}
}

// Listening tells whether the watcher is following notifications now.
func (w *VersionWatcher) Listening() bool { return w.listening.Load() }

// Version returns orgID's current data version. ok is false while the
// watcher cannot know (its LISTEN connection is down).
func (w *VersionWatcher) Version(ctx context.Context, orgID int64) (v int64, ok bool, err error) {
	if !w.listening.Load() {
		return 0, false, nil
	}
	w.mu.RLock()
	v, ok = w.versions[orgID]
	w.mu.RUnlock()
	if ok {
		return v, true, nil
	}
	epoch := w.epoch.Load()
	if err := w.pool.QueryRow(ctx, "SELECT data_version FROM organizations WHERE id = $1", orgID).Scan(&v); err != nil {
		return 0, false, fmt.Errorf("error reading data version of organization %d: %w", orgID, interpretError(err))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epoch.Load() != epoch || !w.listening.Load() {
		return 0, false, nil
	}
	// A notification may have raced ahead of the read: versions only grow.
	if cur := w.versions[orgID]; cur > v {
		v = cur
	}
	w.versions[orgID] = v
	return v, true, nil
}

// observe records a version from a notification.
func (w *VersionWatcher) observe(orgID, v int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v > w.versions[orgID] {
		w.versions[orgID] = v
	}
}

// Run listens until ctx ends, reconnecting with a backoff.
func (w *VersionWatcher) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := w.listen(ctx)
		w.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		w.log.WarnContext(ctx, "data version listener down; caches bypassed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (w *VersionWatcher) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, w.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("error connecting for LISTEN: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{DataVersionChannel, TokenRevokedChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("error listening on %s: %w", ch, err)
		}
	}
	// Everything learned before this point may have missed a change.
	w.mu.Lock()
	w.epoch.Add(1)
	clear(w.versions)
	w.listening.Store(true)
	w.mu.Unlock()
	if w.onTokenRevoked != nil {
		w.onTokenRevoked(0)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("error waiting for notifications: %w", err)
		}
		switch n.Channel {
		case DataVersionChannel:
			org, ver, found := strings.Cut(n.Payload, ":")
			orgID, err1 := strconv.ParseInt(org, 10, 64)
			v, err2 := strconv.ParseInt(ver, 10, 64)
			if !found || err1 != nil || err2 != nil {
				w.log.WarnContext(ctx, "bad data version notification", "payload", n.Payload)
				continue
			}
			w.observe(orgID, v)
		case TokenRevokedChannel:
			id, err := strconv.ParseInt(n.Payload, 10, 64)
			if err != nil {
				id = 0
			}
			if w.onTokenRevoked != nil {
				w.onTokenRevoked(id)
			}
		}
	}
}
