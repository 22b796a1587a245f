package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm/crmsim"
)

const (
	protoTransportWS = "graphql-transport-ws"
	protoLegacyWS    = "graphql-ws"
	progressQuery    = `subscription($id: ID!) { importProgress(id: $id) { id state seq processed created } }`
)

// wsClient is a bare GraphQL-over-WebSocket client speaking either
// subprotocol, as a phone's would.
type wsClient struct {
	c     *websocket.Conn
	proto string
}

// wsMessage is one protocol message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialWS connects and sends connection_init; it returns the error of the
// handshake or of the init (a close with its code).
func dialWS(ctx context.Context, baseURL, proto string, header http.Header, initPayload map[string]any) (*wsClient, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{proto}, HTTPHeader: header,
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	w := &wsClient{c: c, proto: proto}
	payload, _ := json.Marshal(initPayload)
	if err := w.send(ctx, wsMessage{Type: "connection_init", Payload: payload}); err != nil {
		c.CloseNow()
		return nil, err
	}
	m, err := w.next(ctx)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	if m.Type == "connection_error" {
		// The legacy protocol says why before it closes.
		if _, err := w.next(ctx); err != nil {
			return nil, err
		}
	}
	if m.Type != "connection_ack" {
		c.CloseNow()
		return nil, fmt.Errorf("expected connection_ack, got %s %s", m.Type, m.Payload)
	}
	return w, nil
}

func (w *wsClient) send(ctx context.Context, m wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return w.c.Write(ctx, websocket.MessageText, b)
}

// subscribe starts an operation with id.
func (w *wsClient) subscribe(ctx context.Context, id, query string, vars map[string]any) error {
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if w.proto == protoLegacyWS {
		typ = "start"
	}
	return w.send(ctx, wsMessage{ID: id, Type: typ, Payload: payload})
}

// next returns the next message that matters, answering pings and skipping
// keep-alives.
func (w *wsClient) next(ctx context.Context) (wsMessage, error) {
	for {
		_, b, err := w.c.Read(ctx)
		if err != nil {
			return wsMessage{}, err
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return wsMessage{}, err
		}
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			if err := w.send(ctx, wsMessage{Type: "pong"}); err != nil {
				return wsMessage{}, err
			}
			continue
		}
		return m, nil
	}
}

// event is one subscription event: data or errors, or the end.
type event struct {
	Data     map[string]any
	Errors   []map[string]any
	Complete bool
}

func (e event) code() string {
	if len(e.Errors) == 0 {
		return ""
	}
	c, _ := dig(e.Errors[0], "extensions", "code").(string)
	return c
}

// nextEvent reads the next event of the operation.
func (w *wsClient) nextEvent(ctx context.Context) (event, error) {
	m, err := w.next(ctx)
	if err != nil {
		return event{}, err
	}
	switch m.Type {
	case "next", "data":
		var r struct {
			Data   map[string]any   `json:"data"`
			Errors []map[string]any `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			return event{}, err
		}
		return event{Data: r.Data, Errors: r.Errors}, nil
	case "error":
		var errs []map[string]any
		if err := json.Unmarshal(m.Payload, &errs); err != nil {
			return event{}, err
		}
		return event{Errors: errs}, nil
	case "complete":
		return event{Complete: true}, nil
	}
	return event{}, fmt.Errorf("unexpected message %s %s", m.Type, m.Payload)
}

// progressTrail collects importProgress events and checks them: seq
// strictly increasing, and nothing after a final state but the end.
type progressTrail struct {
	runs     []map[string]any
	complete bool
}

func (p *progressTrail) add(t *testing.T, run map[string]any) {
	t.Helper()
	require.False(t, p.complete, "event after complete")
	if n := len(p.runs); n > 0 {
		prev := p.runs[n-1]
		require.Greater(t, run["seq"].(float64), prev["seq"].(float64), "seq must strictly increase: %v after %v", run, prev)
		require.NotContains(t, []any{"SUCCEEDED", "FAILED", "CANCELLED"}, prev["state"], "event after a final state")
	}
	p.runs = append(p.runs, run)
}

func (p *progressTrail) last() map[string]any { return p.runs[len(p.runs)-1] }

// follow reads importProgress events until the subscription completes.
func (w *wsClient) follow(ctx context.Context, t *testing.T, trail *progressTrail) {
	t.Helper()
	for {
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		if e.Complete {
			trail.complete = true
			return
		}
		require.Empty(t, e.Errors)
		trail.add(t, e.Data["importProgress"].(map[string]any))
	}
}

// followSSE runs importProgress over Server-Sent Events.
func followSSE(ctx context.Context, t *testing.T, baseURL, token, runID string, trail *progressTrail) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": progressQuery, "variables": map[string]any{"id": runID}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/event-stream")
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "event: complete":
			trail.complete = true
			return
		case strings.HasPrefix(line, "data: "):
			var r struct {
				Data   map[string]any   `json:"data"`
				Errors []map[string]any `json:"errors"`
			}
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &r))
			require.Empty(t, r.Errors)
			trail.add(t, r.Data["importProgress"].(map[string]any))
		}
	}
	require.NoError(t, sc.Err())
	t.Fatal("SSE stream ended without complete")
}

func authInit(token string) map[string]any { return map[string]any{"Authorization": "Bearer " + token} }

// TestImportProgress follows one import over every transport at once:
// graphql-transport-ws, legacy graphql-ws (both bare and with gqlgen's own
// test client) and SSE, plus the organization feed. Each sees a snapshot
// first, then strictly increasing seq, the final state and the end.
func TestImportProgress(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setupImports(t, crmsim.Config{})
	integ := b.integration(t, "TAVE", "demo-5000")
	other := b.integration(t, "HONEYBOOK", "demo-300")

	// The organization feed, on one integration, opened before the start.
	feed, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.memberA))
	require.NoError(t, err)
	defer feed.c.CloseNow()
	require.NoError(t, feed.subscribe(ctx, "feed", `subscription($i: ID) { importRunsUpdated(integrationId: $i) { id state seq processed } }`,
		map[string]any{"i": integ}))
	time.Sleep(200 * time.Millisecond) // let the feed register before the runs start

	runID := b.start(t, b.ownerA, integ, "FULL")["id"].(string)
	b.start(t, b.ownerA, other, "FULL")

	var wg sync.WaitGroup
	trails := map[string]*progressTrail{}
	var mu sync.Mutex
	run := func(name string, fn func(t *testing.T, trail *progressTrail)) {
		trail := &progressTrail{}
		mu.Lock()
		trails[name] = trail
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, func(t *testing.T) { fn(t, trail) })
		}()
	}
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		run(proto, func(t *testing.T, trail *progressTrail) {
			w, err := dialWS(ctx, b.url, proto, nil, authInit(b.ownerA))
			require.NoError(t, err)
			defer w.c.CloseNow()
			require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
			w.follow(ctx, t, trail)
		})
	}
	run("header-auth", func(t *testing.T, trail *progressTrail) {
		w, err := dialWS(ctx, b.url, protoTransportWS, http.Header{"Authorization": {"Bearer " + b.ownerA}}, nil)
		require.NoError(t, err)
		defer w.c.CloseNow()
		require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
		w.follow(ctx, t, trail)
	})
	run("sse", func(t *testing.T, trail *progressTrail) { followSSE(ctx, t, b.url, b.ownerA, runID, trail) })
	run("gqlgen-client", func(t *testing.T, trail *progressTrail) {
		sub := client.New(b.app.handler, client.Path("/graphql")).WebsocketWithPayload(progressQuery, authInit(b.ownerA), client.Var("id", runID))
		defer sub.Close()
		for {
			var resp struct{ ImportProgress map[string]any }
			err := sub.Next(&resp)
			if err != nil && strings.Contains(err.Error(), `"complete"`) {
				trail.complete = true
				return
			}
			require.NoError(t, err)
			trail.add(t, resp.ImportProgress)
		}
	})
	wg.Wait()

	for name, trail := range trails {
		require.True(t, trail.complete, "%s: not completed", name)
		last := trail.last()
		require.Equal(t, "SUCCEEDED", last["state"], "%s: %v", name, last)
		require.Equal(t, 5000.0, last["processed"], name)
		require.Equal(t, runID, trail.runs[0]["id"])
		t.Logf("%s: %d events, seq %v..%v", name, len(trail.runs), trail.runs[0]["seq"], last["seq"])
	}
	require.Greater(t, len(trails[protoTransportWS].runs), 5, "progress was live, not just the end")

	// The feed saw the run to its end, seq increasing, and nothing of the
	// other integration.
	var feedSeq float64 = -1
	for {
		e, err := feed.nextEvent(ctx)
		require.NoError(t, err)
		require.Empty(t, e.Errors)
		r := e.Data["importRunsUpdated"].(map[string]any)
		require.Equal(t, runID, r["id"], "the feed is filtered to one integration")
		require.Greater(t, r["seq"].(float64), feedSeq)
		feedSeq = r["seq"].(float64)
		if r["state"] == "SUCCEEDED" {
			break
		}
	}

	// A finished run: the snapshot, then the end at once.
	w, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.support))
	require.NoError(t, err)
	defer w.c.CloseNow()
	require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
	var done progressTrail
	w.follow(ctx, t, &done)
	require.Len(t, done.runs, 1)
	require.Equal(t, "SUCCEEDED", done.runs[0]["state"])

	code, body := httpGet(t, b.url+"/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, "crmhub_subscription_events_sent_total")
	require.Contains(t, body, "crmhub_subscription_events_coalesced_total")
	require.Contains(t, body, `crmhub_subscription_connections{transport="websocket"}`)
	require.Contains(t, body, "crmhub_progress_hub_reconnects_total 0")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// TestImportProgressReconnect drops the phone's connection mid-import: the
// new subscription starts from the current snapshot and goes on to the end.
func TestImportProgressReconnect(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setupImports(t, crmsim.Config{})
	runID := b.start(t, b.ownerA, b.integration(t, "TAVE", "demo-800+slow"), "FULL")["id"].(string)

	w, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerA))
	require.NoError(t, err)
	require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
	var before progressTrail
	for len(before.runs) < 3 || before.last()["processed"].(float64) == 0 {
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		before.add(t, e.Data["importProgress"].(map[string]any))
	}
	w.c.CloseNow() // the WiFi drops
	seen := before.last()
	require.Equal(t, "RUNNING", seen["state"])
	time.Sleep(2 * time.Second) // the import moves on meanwhile

	w, err = dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerA))
	require.NoError(t, err)
	defer w.c.CloseNow()
	require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
	var after progressTrail
	w.follow(ctx, t, &after)
	require.GreaterOrEqual(t, after.runs[0]["seq"].(float64), seen["seq"].(float64), "the snapshot is the current state")
	require.NotEqual(t, "QUEUED", after.runs[0]["state"])
	require.Equal(t, "SUCCEEDED", after.last()["state"])
	require.Equal(t, 800.0, after.last()["processed"])
	require.True(t, after.complete)
}

// TestImportProgressSurvivesListenerLoss kills the hub's LISTEN session, as
// a PostgreSQL restart does: the hub reconnects, resynchronises, and the
// subscription ends with the true final state.
func TestImportProgressSurvivesListenerLoss(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setupImports(t, crmsim.Config{})
	runID := b.start(t, b.ownerA, b.integration(t, "TAVE", "demo-800+slow"), "FULL")["id"].(string)

	w, err := dialWS(ctx, b.url, protoLegacyWS, nil, authInit(b.ownerA))
	require.NoError(t, err)
	defer w.c.CloseNow()
	require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
	var trail progressTrail
	for len(trail.runs) < 2 {
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		trail.add(t, e.Data["importProgress"].(map[string]any))
	}
	var killed int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'crmhub-listen' AND datname = current_database()`).Scan(&killed))
	require.Equal(t, 1, killed, "one LISTEN session per node")
	w.follow(ctx, t, &trail)
	require.Equal(t, "SUCCEEDED", trail.last()["state"])
	require.Equal(t, 800.0, trail.last()["processed"])
	require.GreaterOrEqual(t, b.app.hub.Reconnects(), int64(1))
	require.Eventually(t, func() bool { return b.app.hub.State().Connected }, 10*time.Second, 50*time.Millisecond)
	_, body := httpGet(t, b.url+"/readyz")
	require.Contains(t, body, "progress hub: ok")
}

// closeCode is the close status of a connection the server closed.
func closeCode(err error) websocket.StatusCode {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// TestSubscriptionAuth: a bad or missing token closes with 4403; another
// organization's run, or feed, answers NOT_FOUND; WebSockets from origins
// not allowed are refused.
func TestSubscriptionAuth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, a := setupApp(t, false)
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		for name, tc := range map[string]struct {
			header http.Header
			init   map[string]any
		}{
			"bad token in init":   {init: authInit("chub_nope")},
			"bad token in header": {header: http.Header{"Authorization": {"Bearer chub_nope"}}},
			"no token":            {},
		} {
			_, err := dialWS(ctx, b.url, proto, tc.header, tc.init)
			require.Equal(t, websocket.StatusCode(4403), closeCode(err), "%s %s: %v", proto, name, err)
		}
	}

	// A run of org A.
	q := `mutation { createIntegration(input: {provider: TAVE, name: "T", credentials: {apiKey: "demo-10"}}) { integration { id } } }`
	integ := dig(b.mustGQL(t, b.ownerA, q, nil), "createIntegration", "integration", "id").(string)
	runID := dig(b.mustGQL(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": integ}), "startImport", "run", "id").(string)

	w, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerB))
	require.NoError(t, err)
	defer w.c.CloseNow()
	for i, tc := range []struct {
		query string
		vars  map[string]any
		code  string
	}{
		{progressQuery, map[string]any{"id": runID}, "NOT_FOUND"},
		{progressQuery, map[string]any{"id": globalIDFor("ImportRun", 999999)}, "NOT_FOUND"},
		{`subscription($o: ID) { importRunsUpdated(organizationId: $o) { id } }`, map[string]any{"o": globalIDFor("Organization", b.orgA.ID)}, "NOT_FOUND"},
		{`subscription($i: ID) { importRunsUpdated(integrationId: $i) { id } }`, map[string]any{"i": integ}, "NOT_FOUND"},
	} {
		id := fmt.Sprint(i)
		require.NoError(t, w.subscribe(ctx, id, tc.query, tc.vars))
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		require.Equal(t, tc.code, e.code(), "%d: %+v", i, e)
		e, err = w.nextEvent(ctx)
		require.NoError(t, err)
		require.True(t, e.Complete, "an operation that failed ends")
	}

	s, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.support))
	require.NoError(t, err)
	defer s.c.CloseNow()
	require.NoError(t, s.subscribe(ctx, "1", `subscription { importRunsUpdated { id } }`, nil))
	e, err := s.nextEvent(ctx)
	require.NoError(t, err)
	require.Equal(t, "BAD_USER_INPUT", e.code())
	_, err = s.nextEvent(ctx) // complete
	require.NoError(t, err)
	// Support names the organization and gets its active run first.
	require.NoError(t, s.subscribe(ctx, "2", `subscription($o: ID) { importRunsUpdated(organizationId: $o) { id state } }`,
		map[string]any{"o": globalIDFor("Organization", b.orgA.ID)}))
	e, err = s.nextEvent(ctx)
	require.NoError(t, err)
	require.Equal(t, runID, dig(e.Data, "importRunsUpdated", "id"))

	// A browser page from elsewhere may not open a WebSocket.
	_, _, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.url, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{protoTransportWS}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}},
	})
	require.Error(t, err)
	_ = a
}

// TestSubscriptionsLeaveNothingBehind opens WebSocket and SSE subscriptions,
// drops them every way a phone does (abruptly, politely, by going silent),
// and checks that every subscription, connection and goroutine is gone. It
// does not run in parallel so that the goroutine count means something.
func TestSubscriptionsLeaveNothingBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, a := setupAppWith(t, false, "", func(c *Config, _ *serveOptions) {
		c.KeepAliveInterval = 200 * time.Millisecond
		c.KeepAliveTimeout = 300 * time.Millisecond
	})
	q := `mutation { createIntegration(input: {provider: TAVE, name: "T", credentials: {apiKey: "demo-10"}}) { integration { id } } }`
	integ := dig(b.mustGQL(t, b.ownerA, q, nil), "createIntegration", "integration", "id").(string)
	// No worker: the run stays QUEUED and its subscriptions stay open.
	runID := dig(b.mustGQL(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": integ}), "startImport", "run", "id").(string)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var clients []*wsClient
	for i := range 30 {
		proto := protoTransportWS
		if i%2 == 1 {
			proto = protoLegacyWS
		}
		w, err := dialWS(ctx, b.url, proto, nil, authInit(b.ownerA))
		require.NoError(t, err)
		require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
		require.NoError(t, w.subscribe(ctx, "2", `subscription { importRunsUpdated { id seq } }`, nil))
		clients = append(clients, w)
	}
	sseCtx, sseCancel := context.WithCancel(ctx)
	var sseDone sync.WaitGroup
	for range 5 {
		sseDone.Add(1)
		go func() {
			defer sseDone.Done()
			body, _ := json.Marshal(map[string]any{"query": progressQuery, "variables": map[string]any{"id": runID}})
			req, _ := http.NewRequestWithContext(sseCtx, http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+b.ownerA)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
				resp.Body.Close()
			}
		}()
	}
	// 60 operations on WebSockets and 5 SSE streams. The 30 importProgress
	// subscriptions (all owner A's) share one execution; the 30 feeds run
	// their own.
	active := func() int64 { return a.live.stats.subscribers.Load() + a.live.stats.sseStreams.Load() }
	require.Eventually(t, func() bool { return active() == 65 && a.progress.Stats().Subscriptions == 1+30+5 }, 10*time.Second, 20*time.Millisecond,
		"subscriptions: %d, in the progress hub: %d", active(), a.progress.Stats().Subscriptions)
	// Everyone has had their snapshot; now they leave.
	for i, w := range clients {
		switch i % 3 {
		case 0:
			w.c.CloseNow() // the WiFi drops
		case 1:
			_ = w.c.Close(websocket.StatusNormalClosure, "bye")
		case 2:
			// A dead phone: it never reads again, so it answers no ping.
			// The keep-alive closes it within interval + timeout.
		}
	}
	sseCancel()
	sseDone.Wait()
	require.Eventually(t, func() bool {
		return active() == 0 && a.progress.Stats().Subscriptions == 0
	}, 10*time.Second, 20*time.Millisecond, "subscriptions left: %d, in the progress hub: %d", active(), a.progress.Stats().Subscriptions)
	_, body := httpGet(t, b.url+"/metrics")
	require.Contains(t, body, `crmhub_subscription_connections{transport="websocket"} 0`)
	require.Contains(t, body, `crmhub_subscription_connections{transport="sse"} 0`)
	require.Contains(t, body, "crmhub_subscriptions_active 0")
	require.NotContains(t, body, "crmhub_subscription_keepalive_timeouts_total 0")
	for _, w := range clients {
		w.c.CloseNow()
	}
	http.DefaultClient.CloseIdleConnections()
	require.Eventually(t, func() bool {
		return runtime.NumGoroutine() <= baseline+2 && !stacksContain("streamProgress", "handler/transport", "coder/websocket", "(*wsConn)", "(*liveStream)")
	}, 10*time.Second, 50*time.Millisecond, "goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, stacks())
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func stacksContain(subs ...string) bool {
	s := stacks()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestTwoNodes runs two `crmhub serve` processes on one database: node A
// works imports, node B (CRMHUB_MAX_WORKERS=0) only serves the API. A
// subscriber on B follows a run worked on A to its end, and a run cancelled
// through B stops on A.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := setupProcesses(t, "two")
	pool, token := p.pool, p.token
	env := append(p.env, "CRMHUB_IMPORT_SLICE=2s")
	nodeA := startServerProcess(t, env)
	nodeB := startServerProcess(t, append(env, "CRMHUB_MAX_WORKERS=0"))
	b := &testBundle{url: nodeB.url}
	newInteg := func(cred string) string {
		return dig(b.mustGQL(t, token, `mutation($url: String!, $c: String!) { createIntegration(input: {provider: TAVE, name: "Tave", baseUrl: $url, credentials: {apiKey: $c}}) { integration { id } } }`,
			map[string]any{"url": p.simURL + "/tave/api/v2", "c": cred}), "createIntegration", "integration", "id").(string)
	}
	start := func(integ string) string {
		return dig(b.mustGQL(t, token, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
			map[string]any{"id": integ}), "startImport", "run", "id").(string)
	}

	// Followed on B, worked on A.
	runID := start(newInteg("demo-3000"))
	w, err := dialWS(ctx, nodeB.url, protoTransportWS, nil, authInit(token))
	require.NoError(t, err)
	defer w.c.CloseNow()
	require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
	var trail progressTrail
	w.follow(ctx, t, &trail)
	require.Equal(t, "SUCCEEDED", trail.last()["state"])
	require.Equal(t, 3000.0, trail.last()["processed"])
	require.Greater(t, len(trail.runs), 3, "B saw the progress live")

	// Cancelled through B, stops on A.
	slowID := start(newInteg("demo-5000+slow"))
	require.NoError(t, w.subscribe(ctx, "2", progressQuery, map[string]any{"id": slowID}))
	var slow progressTrail
	for len(slow.runs) == 0 || slow.last()["processed"].(float64) == 0 {
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		slow.add(t, e.Data["importProgress"].(map[string]any))
	}
	data := b.mustGQL(t, token, `mutation($id: ID!) { cancelImport(input: {id: $id}) { run { state } } }`, map[string]any{"id": slowID})
	require.Equal(t, "CANCELLED", dig(data, "cancelImport", "run", "state"))
	w.follow(ctx, t, &slow)
	require.Equal(t, "CANCELLED", slow.last()["state"])
	_, id, err := parseGID(slowID)
	require.NoError(t, err)
	var processed int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT processed FROM import_runs WHERE id = $1", id).Scan(&processed))
	time.Sleep(3 * time.Second) // longer than a page on A
	var later int64
	var state string
	require.NoError(t, pool.QueryRow(ctx, "SELECT processed, state FROM import_runs WHERE id = $1", id).Scan(&later, &state))
	require.Equal(t, "CANCELLED", state)
	require.Equal(t, processed, later, "node A stopped working the run")
	var running int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE state = 'running'").Scan(&running))
	require.Zero(t, running)
	_ = nodeA
}
