package db

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ProgressHub fans import run changes out to subscribers: it is the
// HubHandler of ProgressChannel. Each notification is decoded once, however
// many subscribers follow the run, and no subscriber ever causes a database
// read per event. Every subscriber has a latest-wins mailbox: at most one
// pending state per run, so a slow phone gets the newest snapshot rather
// than a growing backlog, and never holds up the hub or anyone else.
type ProgressHub struct {
	queries *Queries
	log     *slog.Logger

	mu    sync.RWMutex
	byRun map[int64]map[*ProgressSubscription]struct{}
	byOrg map[int64]map[*ProgressSubscription]struct{}

	subscriptions atomic.Int64
	published     atomic.Int64
	coalesced     atomic.Int64
	stale         atomic.Int64
	sent          atomic.Int64
	resyncs       atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewProgressHub returns a ProgressHub that re-reads runs with queries when
// it must resynchronise. Register it with Hub.Handle(ProgressChannel, …).
func NewProgressHub(queries *Queries, log *slog.Logger) *ProgressHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &ProgressHub{
		queries: queries, log: log, ctx: ctx, cancel: cancel,
		byRun: map[int64]map[*ProgressSubscription]struct{}{},
		byOrg: map[int64]map[*ProgressSubscription]struct{}{},
	}
}

// Stop abandons a resynchronisation in progress and waits for it to end.
func (p *ProgressHub) Stop() {
	p.cancel()
	p.wg.Wait()
}

// ProgressStats are a ProgressHub's counters.
type ProgressStats struct {
	// Subscriptions is how many subscriptions are open.
	Subscriptions int64
	// Published counts run changes received (notifications and resyncs).
	Published int64
	// Coalesced counts pending states replaced by a newer one before the
	// subscriber took them (latest wins).
	Coalesced int64
	// Stale counts states dropped because the subscriber had one as new.
	Stale int64
	// Sent counts states handed to subscribers.
	Sent int64
	// Resyncs counts resynchronisations after the LISTEN connection
	// (re)connected.
	Resyncs int64
}

// Stats returns the hub's counters.
func (p *ProgressHub) Stats() ProgressStats {
	return ProgressStats{
		Subscriptions: p.subscriptions.Load(), Published: p.published.Load(), Coalesced: p.coalesced.Load(),
		Stale: p.stale.Load(), Sent: p.sent.Load(), Resyncs: p.resyncs.Load(),
	}
}

// Notify decodes a run from a ProgressChannel payload and offers it to its
// subscribers. It implements HubHandler.
func (p *ProgressHub) Notify(payload string) {
	var run ImportRun
	if err := json.Unmarshal([]byte(payload), &run); err != nil {
		p.log.Error("undecodable progress notification", "err", err)
		return
	}
	p.Publish(&run)
}

// Publish offers a run to its subscribers: those following the run, and
// those following its organization (and integration). The run must not be
// changed afterwards; subscribers share it.
func (p *ProgressHub) Publish(run *ImportRun) {
	p.published.Add(1)
	p.mu.RLock()
	defer p.mu.RUnlock()
	for s := range p.byRun[run.ID] {
		s.offer(run)
	}
	for s := range p.byOrg[run.OrgID] {
		if s.integrationID == nil || *s.integrationID == run.IntegrationID {
			s.offer(run)
		}
	}
}

// Resync re-reads every followed run after the LISTEN connection
// (re)connected, in the background: one query for all followed runs and one
// per followed organization, whatever the number of subscribers. It
// implements HubHandler.
func (p *ProgressHub) Resync(downSince time.Time) {
	p.mu.RLock()
	runIDs := make([]int64, 0, len(p.byRun))
	for id := range p.byRun {
		runIDs = append(runIDs, id)
	}
	orgIDs := make([]int64, 0, len(p.byOrg))
	for id := range p.byOrg {
		orgIDs = append(orgIDs, id)
	}
	p.mu.RUnlock()
	if len(runIDs) == 0 && len(orgIDs) == 0 {
		return
	}
	p.resyncs.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Runs that changed while the connection was down, with a margin
		// for clock skew between this node and the database.
		since := downSince.Add(-time.Minute)
		for attempt := 1; ; attempt++ {
			err := p.resync(runIDs, orgIDs, since)
			if err == nil || p.ctx.Err() != nil {
				return
			}
			if attempt == 5 {
				p.log.Error("giving up resynchronising import progress", "err", err)
				return
			}
			p.log.Warn("error resynchronising import progress; retrying", "err", err)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
	}()
}

func (p *ProgressHub) resync(runIDs, orgIDs []int64, since time.Time) error {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if len(runIDs) > 0 {
		runs, err := p.queries.ImportRunGetMany(ctx, runIDs)
		if err != nil {
			return err
		}
		for _, r := range runs {
			p.Publish(r)
		}
	}
	for _, orgID := range orgIDs {
		runs, err := p.queries.ImportRunListChanged(ctx, orgID, nil, &since)
		if err != nil {
			return err
		}
		for _, r := range runs {
			p.Publish(r)
		}
	}
	return nil
}

// SubscribeRun follows one run. Subscribe before reading the run's snapshot,
// so that no change between the read and the subscription is missed.
func (p *ProgressHub) SubscribeRun(runID int64) *ProgressSubscription {
	s := &ProgressSubscription{hub: p, runID: runID, ready: make(chan struct{}, 1)}
	p.add(p.byRun, runID, s)
	return s
}

// SubscribeOrg follows every run of an organization, or of one of its
// integrations when integrationID is set.
func (p *ProgressHub) SubscribeOrg(orgID int64, integrationID *int64) *ProgressSubscription {
	s := &ProgressSubscription{hub: p, orgID: orgID, integrationID: integrationID, ready: make(chan struct{}, 1),
		delivered: map[int64]int64{}}
	p.add(p.byOrg, orgID, s)
	return s
}

func (p *ProgressHub) add(m map[int64]map[*ProgressSubscription]struct{}, key int64, s *ProgressSubscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := m[key]
	if set == nil {
		set = map[*ProgressSubscription]struct{}{}
		m[key] = set
	}
	set[s] = struct{}{}
	p.subscriptions.Add(1)
}

func (p *ProgressHub) remove(s *ProgressSubscription) {
	m, key := p.byRun, s.runID
	if s.runID == 0 {
		m, key = p.byOrg, s.orgID
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	set := m[key]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(m, key)
	}
	p.subscriptions.Add(-1)
}

// ProgressSubscription is one subscriber's latest-wins mailbox. One
// goroutine consumes it: wait on Ready, Take the pending states, and call
// Delivered for each one sent.
type ProgressSubscription struct {
	hub           *ProgressHub
	runID         int64
	orgID         int64
	integrationID *int64
	ready         chan struct{}

	mu      sync.Mutex
	pending []*ImportRun
	// lastSeq is the seq last delivered of a run subscription; delivered
	// is the same per run for an organization subscription.
	lastSeq   int64
	delivered map[int64]int64
	closed    bool
}

// Ready has a value when states are pending.
func (s *ProgressSubscription) Ready() <-chan struct{} { return s.ready }

func (s *ProgressSubscription) deliveredSeq(runID int64) int64 {
	if s.delivered == nil {
		return s.lastSeq
	}
	return s.delivered[runID]
}

// offer puts a run in the mailbox, replacing an older pending state of the
// same run and ignoring one no newer than what the subscriber has.
func (s *ProgressSubscription) offer(run *ImportRun) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if run.Seq <= s.deliveredSeq(run.ID) {
		s.mu.Unlock()
		s.hub.stale.Add(1)
		return
	}
	for i, old := range s.pending {
		if old.ID != run.ID {
			continue
		}
		if run.Seq <= old.Seq {
			s.mu.Unlock()
			s.hub.stale.Add(1)
			return
		}
		s.pending[i] = run
		s.mu.Unlock()
		s.hub.coalesced.Add(1)
		return
	}
	s.pending = append(s.pending, run)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Take empties the mailbox and returns the pending states newer than what
// was delivered, at most one per run.
func (s *ProgressSubscription) Take() []*ImportRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.pending[:0:0]
	for _, r := range s.pending {
		if r.Seq > s.deliveredSeq(r.ID) {
			out = append(out, r)
		}
	}
	s.pending = nil
	return out
}

// Pending is how many states wait in the mailbox.
func (s *ProgressSubscription) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Delivered records that run was sent to the subscriber, so that no state
// as old is sent again: seq only ever grows on the wire.
func (s *ProgressSubscription) Delivered(run *ImportRun) {
	s.mu.Lock()
	if s.delivered == nil {
		s.lastSeq = max(s.lastSeq, run.Seq)
	} else {
		s.delivered[run.ID] = max(s.delivered[run.ID], run.Seq)
	}
	s.mu.Unlock()
	s.hub.sent.Add(1)
}

// Close unregisters the subscription. It is safe to call more than once.
func (s *ProgressSubscription) Close() {
	s.hub.remove(s)
	s.mu.Lock()
	s.closed = true
	s.pending = nil
	s.mu.Unlock()
}

// ImportRunListChanged returns an organization's runs (of one integration,
// when integrationID is set) that are active or, when since is set, changed
// since then; newest first, at most 500. It is what a feed of the
// organization's runs starts with, and re-reads after it may have missed
// notifications.
func (q *Queries) ImportRunListChanged(ctx context.Context, orgID int64, integrationID *int64, since *time.Time) ([]*ImportRun, error) {
	rows, err := q.exec.Query(ctx, "SELECT "+runColumns+` FROM import_runs
		WHERE org_id = $1 AND ($2::bigint IS NULL OR integration_id = $2)
		AND (state IN ('QUEUED', 'RUNNING', 'RETRYING') OR ($3::timestamptz IS NOT NULL AND updated_at >= $3))
		ORDER BY id DESC LIMIT 500`, orgID, integrationID, since)
	if err != nil {
		return nil, fmt.Errorf("error listing changed import runs of organization %d: %w", orgID, err)
	}
	runs, err := collect(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("error listing changed import runs of organization %d: %w", orgID, err)
	}
	return runs, nil
}
