package db

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestProgressSlowConsumer publishes 1,000 changes of a run over 10 seconds
// to a subscriber that does not read: it never holds more than one pending
// state, the publisher never waits on it, another subscriber keeps up, and
// when the slow one reads at last it gets the latest state.
func TestProgressSlowConsumer(t *testing.T) {
	t.Parallel()
	hub := NewProgressHub(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer hub.Stop()
	slow := hub.SubscribeRun(42)
	defer slow.Close()
	fast := hub.SubscribeRun(42)
	defer fast.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	var fastLast int64
	go func() {
		defer wg.Done()
		for fastLast < 1000 {
			<-fast.Ready()
			for _, r := range fast.Take() {
				require.Greater(t, r.Seq, fastLast)
				fastLast = r.Seq
				fast.Delivered(r)
			}
		}
	}()

	const events = 1000
	start := time.Now()
	for seq := int64(1); seq <= events; seq++ {
		payload, err := json.Marshal(&ImportRun{ID: 42, OrgID: 1, State: RunRunning, Seq: seq, Processed: seq * 10})
		require.NoError(t, err)
		// The slow subscriber never reads during the loop: a publish that
		// waited for it would never return. (A bound, not a timing: on a
		// loaded machine a publish may take long, but not forever.)
		published := make(chan struct{})
		go func() {
			hub.Notify(string(payload))
			close(published)
		}()
		select {
		case <-published:
		case <-time.After(5 * time.Second):
			t.Fatal("publishing waits for a subscriber")
		}
		require.LessOrEqual(t, slow.Pending(), 1, "at most one pending state")
		// Spread the events over 10 seconds, as a long import would.
		time.Sleep(time.Until(start.Add(time.Duration(seq) * 10 * time.Second / events)))
	}
	wg.Wait()
	require.Equal(t, int64(events), fastLast)

	// The slow subscriber reads at last: one state, the latest.
	select {
	case <-slow.Ready():
	default:
		t.Fatal("the slow subscriber was not told a state is pending")
	}
	got := slow.Take()
	require.Len(t, got, 1)
	require.Equal(t, int64(events), got[0].Seq)
	require.Equal(t, int64(events*10), got[0].Processed)
	slow.Delivered(got[0])
	require.GreaterOrEqual(t, hub.Stats().Coalesced, int64(events-2))

	// A duplicate or older state is dropped.
	hub.Publish(&ImportRun{ID: 42, OrgID: 1, State: RunRunning, Seq: events - 5})
	require.Empty(t, slow.Take())
}

// TestProgressOrgFeed keeps one pending state per run for an organization
// feed, filtered by integration.
func TestProgressOrgFeed(t *testing.T) {
	t.Parallel()
	hub := NewProgressHub(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer hub.Stop()
	integ := int64(7)
	all := hub.SubscribeOrg(1, nil)
	one := hub.SubscribeOrg(1, &integ)
	for seq := int64(1); seq <= 10; seq++ {
		hub.Publish(&ImportRun{ID: 1, OrgID: 1, IntegrationID: 7, Seq: seq})
		hub.Publish(&ImportRun{ID: 2, OrgID: 1, IntegrationID: 8, Seq: seq})
		hub.Publish(&ImportRun{ID: 3, OrgID: 2, IntegrationID: 9, Seq: seq})
	}
	got := all.Take()
	require.Len(t, got, 2)
	require.Equal(t, int64(10), got[0].Seq)
	require.Equal(t, int64(10), got[1].Seq)
	got = one.Take()
	require.Len(t, got, 1)
	require.Equal(t, int64(1), got[0].ID)
	all.Close()
	one.Close()
	require.Zero(t, hub.Stats().Subscriptions)
}
