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

	"github.com/jackc/pgx/v5/pgxpool"
)

// TokenRevokedChannel is the NOTIFY channel of token revocations: payload
// the token's id. Nodes drop cached principals when they hear it.
const TokenRevokedChannel = "crmhub_token_revoked"

// VersionWatcher knows every organization's current data version on this
// node: it reads a version once from the database and then follows
// DataVersionChannel through the node's LISTEN hub. While the hub is down it
// knows nothing (Version says so), because any notification may be missed;
// callers then bypass what they cached.
type VersionWatcher struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// onTokenRevoked is called for every revoked token id, and with 0 when
	// the hub comes back (revocations may have been missed).
	onTokenRevoked func(tokenID int64)

	mu       sync.RWMutex
	versions map[int64]int64
	// epoch grows at every (re)connect; a version read from the database
	// under an older epoch is not stored, it may predate a missed
	// notification.
	epoch     atomic.Uint64
	listening atomic.Bool
	hub       *Hub
}

// VersionWatcherConfig configures a VersionWatcher.
type VersionWatcherConfig struct {
	// Pool is where versions are read.
	Pool *pgxpool.Pool
	// Hub delivers DataVersionChannel and TokenRevokedChannel; it must
	// listen on both.
	Hub *Hub
	// Logger logs bad notifications.
	Logger *slog.Logger
	// OnTokenRevokedFunc is called with a revoked token's id, and with 0
	// after a reconnect. Optional.
	OnTokenRevokedFunc func(tokenID int64)
}

// NewVersionWatcher returns a watcher registered on the hub.
func NewVersionWatcher(cfg VersionWatcherConfig) (*VersionWatcher, error) {
	w := &VersionWatcher{
		pool: cfg.Pool, log: cfg.Logger, onTokenRevoked: cfg.OnTokenRevokedFunc,
		versions: map[int64]int64{}, hub: cfg.Hub,
	}
	if _, err := cfg.Hub.Handle(DataVersionChannel, versionHandler{w}); err != nil {
		return nil, err
	}
	if _, err := cfg.Hub.Handle(TokenRevokedChannel, revocationHandler{w}); err != nil {
		return nil, err
	}
	return w, nil
}

// Listening tells whether the watcher is following notifications now.
func (w *VersionWatcher) Listening() bool { return w.listening.Load() && w.hub.State().Connected }

// Version returns orgID's current data version. ok is false while the
// watcher cannot know (the hub's LISTEN connection is down).
func (w *VersionWatcher) Version(ctx context.Context, orgID int64) (v int64, ok bool, err error) {
	if !w.Listening() {
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
	if w.epoch.Load() != epoch || !w.Listening() {
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

// resync forgets everything learned before a (re)connect, which may have
// missed a change.
func (w *VersionWatcher) resync() {
	w.mu.Lock()
	w.epoch.Add(1)
	clear(w.versions)
	w.listening.Store(true)
	w.mu.Unlock()
	if w.onTokenRevoked != nil {
		w.onTokenRevoked(0)
	}
}

// versionHandler takes DataVersionChannel's "orgID:version" payloads.
type versionHandler struct{ w *VersionWatcher }

func (h versionHandler) Notify(payload string) {
	org, ver, found := strings.Cut(payload, ":")
	orgID, err1 := strconv.ParseInt(org, 10, 64)
	v, err2 := strconv.ParseInt(ver, 10, 64)
	if !found || err1 != nil || err2 != nil {
		h.w.log.Warn("bad data version notification", "payload", payload)
		return
	}
	h.w.observe(orgID, v)
}

func (h versionHandler) Resync(time.Time) { h.w.resync() }

// revocationHandler takes TokenRevokedChannel's token ids.
type revocationHandler struct{ w *VersionWatcher }

func (h revocationHandler) Notify(payload string) {
	id, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		id = 0
	}
	if h.w.onTokenRevoked != nil {
		h.w.onTokenRevoked(id)
	}
}

func (h revocationHandler) Resync(time.Time) {}
