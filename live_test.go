package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm/crmsim"
)

// rawWS is a WebSocket client with no goroutine of its own, written
// against RFC 6455 like the server side: the tests count the server's
// goroutines, and a peer that goes silent is easiest to play with bare
// frames.
type rawWS struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, baseURL, proto string) *rawWS {
	t.Helper()
	host := strings.TrimPrefix(baseURL, "http://")
	nc, err := net.Dial("tcp", host)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET /graphql HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: " + proto + "\r\n\r\n"
	_, err = nc.Write([]byte(req))
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, proto, resp.Header.Get("Sec-WebSocket-Protocol"))
	return &rawWS{nc: nc, br: br}
}

// write sends one masked text (or other) frame.
func (w *rawWS) write(op byte, payload []byte) error {
	frame := []byte{0x80 | op}
	switch n := len(payload); {
	case n <= 125:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xFFFF:
		frame = binary.BigEndian.AppendUint16(append(frame, 0x80|126), uint16(n))
	default:
		frame = binary.BigEndian.AppendUint64(append(frame, 0x80|127), uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i&3])
	}
	_, err := w.nc.Write(frame)
	return err
}

func (w *rawWS) send(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, w.write(wsOpText, b))
}

// read returns the next frame from the server.
func (w *rawWS) read() (op byte, payload []byte, err error) {
	var head [2]byte
	if _, err := io.ReadFull(w.br, head[:]); err != nil {
		return 0, nil, err
	}
	if head[1]&0x80 != 0 {
		return 0, nil, errors.New("a server frame was masked")
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(w.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(w.br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return head[0] & 0x0F, payload, err
}

// next returns the next protocol message, answering WebSocket pings and
// protocol pings, and skipping keep-alives.
func (w *rawWS) next(t *testing.T) wsEnvelope {
	t.Helper()
	for {
		_ = w.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		op, payload, err := w.read()
		require.NoError(t, err)
		switch op {
		case wsOpPing:
			require.NoError(t, w.write(wsOpPong, payload))
			continue
		case wsOpClose:
			t.Fatalf("closed by the server: %d %s", binary.BigEndian.Uint16(payload), payload[2:])
		}
		var m wsEnvelope
		require.NoError(t, json.Unmarshal(payload, &m))
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			w.send(t, map[string]any{"type": "pong"})
			continue
		}
		return m
	}
}

func (w *rawWS) init(t *testing.T, token string) {
	t.Helper()
	w.send(t, map[string]any{"type": "connection_init", "payload": authInit(token)})
	require.Equal(t, "connection_ack", w.next(t).Type)
}

// TestSharedStream: two subscribers of one run share one execution; both
// get the snapshot, increasing seq, the final state and the end; one
// leaving does not end the other's stream; a subscriber of another
// organization to the same run gets NOT_FOUND while the first streams on.
func TestSharedStream(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := setupImports(t, crmsim.Config{})
	runID := b.start(t, b.ownerA, b.integration(t, "TAVE", "demo-800+slow"), "FULL")["id"].(string)
	stats := &b.app.live.stats
	before := stats.executions.Load()
	// Subscribers share only while the LISTEN hub is up; on a loaded
	// machine it may still be connecting.
	require.Eventually(t, b.app.live.shareable, 10*time.Second, 5*time.Millisecond)

	first, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerA))
	require.NoError(t, err)
	defer first.c.CloseNow()
	require.NoError(t, first.subscribe(ctx, "a", progressQuery, map[string]any{"id": runID}))
	var trail1 progressTrail
	e, err := first.nextEvent(ctx)
	require.NoError(t, err)
	trail1.add(t, e.Data["importProgress"].(map[string]any))

	// The second subscriber (legacy subprotocol, same query and view)
	// joins the running execution and gets its current state first.
	second, err := dialWS(ctx, b.url, protoLegacyWS, nil, authInit(b.ownerA))
	require.NoError(t, err)
	defer second.c.CloseNow()
	require.NoError(t, second.subscribe(ctx, "b", progressQuery, map[string]any{"id": runID}))
	var trail2 progressTrail
	for len(trail2.runs) < 3 {
		e, err := second.nextEvent(ctx)
		require.NoError(t, err)
		require.Empty(t, e.Errors)
		trail2.add(t, e.Data["importProgress"].(map[string]any))
	}
	require.Equal(t, runID, trail2.runs[0]["id"])
	require.GreaterOrEqual(t, trail2.runs[0]["seq"].(float64), trail1.runs[0]["seq"].(float64), "the joiner's snapshot is current")
	require.Equal(t, int64(1), stats.executions.Load()-before, "two subscribers, one execution")
	require.Equal(t, int64(1), stats.streams.Load())

	// The second leaves (stop): the first's stream goes on.
	require.NoError(t, second.send(ctx, wsMessage{ID: "b", Type: "stop"}))
	for {
		e, err := second.nextEvent(ctx)
		require.NoError(t, err)
		if e.Complete {
			break
		}
	}

	// Org B on the same run id: NOT_FOUND for it alone.
	other, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerB))
	require.NoError(t, err)
	defer other.c.CloseNow()
	require.NoError(t, other.subscribe(ctx, "x", progressQuery, map[string]any{"id": runID}))
	e, err = other.nextEvent(ctx)
	require.NoError(t, err)
	require.Equal(t, "NOT_FOUND", e.code())
	e, err = other.nextEvent(ctx)
	require.NoError(t, err)
	require.True(t, e.Complete)
	require.Equal(t, int64(2), stats.executions.Load()-before, "org B's subscription was an execution of its own")

	// SUPPORT never shares: each subscription is an execution of its own,
	// so each gets its own audit record.
	for i := range 2 {
		s, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.support))
		require.NoError(t, err)
		defer s.c.CloseNow()
		require.NoError(t, s.subscribe(ctx, "s", progressQuery, map[string]any{"id": runID}))
		e, err := s.nextEvent(ctx)
		require.NoError(t, err)
		require.Equal(t, runID, dig(e.Data, "importProgress", "id"), "support %d", i)
	}
	require.Equal(t, int64(4), stats.executions.Load()-before, "two SUPPORT subscribers, two executions")

	first.follow(ctx, t, &trail1)
	require.True(t, trail1.complete)
	require.Equal(t, "SUCCEEDED", trail1.last()["state"])
	require.Equal(t, 800.0, trail1.last()["processed"])
	require.Greater(t, len(trail1.runs), 3, "the first saw the run live after the second left")
	require.Eventually(t, func() bool { return stats.streams.Load() == 0 && stats.subscribers.Load() == 0 },
		5*time.Second, 20*time.Millisecond)
}

// TestWebSocketOperations: queries and mutations sent on the socket run
// through the executor, on both subprotocols; graphql-ws gets "ka" after
// the ack, and a stopped subscription a complete.
func TestWebSocketOperations(t *testing.T) {
	t.Parallel()
	b, _ := setupApp(t, false)
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			w := dialRaw(t, b.url, proto)
			w.send(t, map[string]any{"type": "connection_init", "payload": authInit(b.ownerA)})
			require.Equal(t, "connection_ack", w.next(t).Type)
			start := "subscribe"
			data := "next"
			if proto == protoLegacyWS {
				start, data = "start", "data"
				_ = w.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, ka, err := w.read()
				require.NoError(t, err)
				require.JSONEq(t, `{"type":"ka"}`, string(ka))
			}
			w.send(t, map[string]any{"id": "q", "type": start, "payload": map[string]any{"query": `{ viewer { role } }`}})
			m := w.next(t)
			require.Equal(t, data, m.Type)
			require.Equal(t, "q", m.ID)
			require.Contains(t, string(m.Payload), `{"data":{"viewer":{"role":"OWNER"}}`)
			require.Equal(t, "complete", w.next(t).Type)

			w.send(t, map[string]any{"id": "m", "type": start, "payload": map[string]any{
				"query": `mutation { createIntegration(input: {provider: TAVE, name: "WS", credentials: {apiKey: "demo-1"}}) { integration { name } } }`,
			}})
			m = w.next(t)
			require.Equal(t, data, m.Type)
			require.Contains(t, string(m.Payload), `"name":"WS"`)
			require.Equal(t, "complete", w.next(t).Type)

			// A bad query: the errors, then the end.
			w.send(t, map[string]any{"id": "e", "type": start, "payload": map[string]any{"query": `{ nope }`}})
			m = w.next(t)
			require.Contains(t, []string{"error", data}, m.Type)
			require.Contains(t, string(m.Payload), "nope")
			require.Equal(t, "complete", w.next(t).Type)
		})
	}
}

// TestKeepAliveClosesSilentPeer: a peer that stops answering pings is
// closed within the keep-alive interval plus timeout (and a tick), and its
// subscription freed; a peer that answers stays.
func TestKeepAliveClosesSilentPeer(t *testing.T) {
	t.Parallel()
	const interval, timeout = 300 * time.Millisecond, 300 * time.Millisecond
	b, a := setupAppWith(t, false, "", func(c *Config, _ *serveOptions) {
		c.KeepAliveInterval = interval
		c.KeepAliveTimeout = timeout
	})
	integ := dig(b.mustGQL(t, b.ownerA, `mutation { createIntegration(input: {provider: TAVE, name: "T", credentials: {apiKey: "demo-10"}}) { integration { id } } }`, nil),
		"createIntegration", "integration", "id").(string)
	runID := dig(b.mustGQL(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": integ}), "startImport", "run", "id").(string)

	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			silent := dialRaw(t, b.url, proto)
			silent.init(t, b.ownerA)
			alive := dialRaw(t, b.url, proto)
			alive.init(t, b.ownerA)
			start := "subscribe"
			if proto == protoLegacyWS {
				start = "start"
			}
			for _, w := range []*rawWS{silent, alive} {
				w.send(t, map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": progressQuery, "variables": map[string]any{"id": runID}}})
				require.Equal(t, runID, dig(decoded(t, w.next(t).Payload), "data", "importProgress", "id"))
			}
			// The answering peer answers every ping, on its own goroutine,
			// until it has the answer to a query sent at the end.
			answered := make(chan error, 1)
			go func() {
				for {
					_ = alive.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
					op, payload, err := alive.read()
					if err != nil {
						answered <- err
						return
					}
					switch {
					case op == wsOpPing:
						err = alive.write(wsOpPong, payload)
					case op == wsOpText && strings.Contains(string(payload), `"type":"ping"`):
						err = alive.write(wsOpText, []byte(`{"type":"pong"}`))
					case op == wsOpText && strings.Contains(string(payload), `"id":"q"`):
						answered <- nil
						return
					}
					if err != nil {
						answered <- err
						return
					}
				}
			}()
			// The silent peer reads what comes (so nothing backs up) but
			// answers nothing; the connection must end.
			went := time.Now()
			var pings, protocolPings int
			for {
				_ = silent.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				op, payload, err := silent.read()
				if err != nil {
					require.False(t, errors.Is(err, context.DeadlineExceeded) || isTimeout(err), "the server never closed: %v", err)
					break
				}
				switch {
				case op == wsOpPing:
					pings++
				case op == wsOpText && (strings.Contains(string(payload), `"ping"`) || strings.Contains(string(payload), `"ka"`)):
					protocolPings++
				case op == wsOpClose:
				}
			}
			elapsed := time.Since(went)
			require.GreaterOrEqual(t, pings, 1, "WebSocket pings were sent")
			require.GreaterOrEqual(t, protocolPings, 1, "protocol pings (or ka) were sent")
			require.Less(t, elapsed, interval+timeout+interval+time.Second, "closed within interval + timeout")
			// The answering peer is still there.
			require.NoError(t, alive.write(wsOpText, []byte(`{"id":"q","type":"`+start+`","payload":{"query":"{ viewer { role } }"}}`)))
			require.NoError(t, <-answered)
		})
	}
	_, body := httpGet(t, b.url+"/metrics")
	require.NotContains(t, body, "crmhub_subscription_keepalive_timeouts_total 0")
	_ = a
}

func decoded(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestIdleConnectionGoroutines: an idle subscriber's connection costs one
// goroutine (its reader), whatever the number of subscribers, and nothing
// is left once they are gone. It does not run in parallel so that the
// goroutine count means something.
func TestIdleConnectionGoroutines(t *testing.T) {
	b, a := setupApp(t, false)
	integ := dig(b.mustGQL(t, b.ownerA, `mutation { createIntegration(input: {provider: TAVE, name: "T", credentials: {apiKey: "demo-10"}}) { integration { id } } }`, nil),
		"createIntegration", "integration", "id").(string)
	runID := dig(b.mustGQL(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": integ}), "startImport", "run", "id").(string)
	// One shared execution needs the LISTEN hub up (see TestSharedStream).
	require.Eventually(t, a.live.shareable, 10*time.Second, 5*time.Millisecond)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	const n = 60
	var conns []*rawWS
	for i := range n {
		proto := protoTransportWS
		start := "subscribe"
		if i%2 == 1 {
			proto, start = protoLegacyWS, "start"
		}
		w := dialRaw(t, b.url, proto)
		w.init(t, b.ownerA)
		w.send(t, map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": progressQuery, "variables": map[string]any{"id": runID}}})
		require.Equal(t, runID, dig(decoded(t, w.next(t).Payload), "data", "importProgress", "id"))
		conns = append(conns, w)
	}
	require.Equal(t, int64(n), a.live.stats.subscribers.Load())
	require.Equal(t, int64(1), a.live.stats.streams.Load(), "one shared execution")
	time.Sleep(300 * time.Millisecond) // idle
	readers := strings.Count(stacks(), "(*wsConn).readLoop")
	extra := runtime.NumGoroutine() - baseline
	t.Logf("%d idle subscribers: %d goroutines over the baseline, %d readers", n, extra, readers)
	require.Equal(t, n, readers, "one reader per connection")
	// One reader per connection, plus the shared execution (its stream
	// and the resolver's goroutine) and a little slack.
	require.LessOrEqual(t, extra, n+4, "at most one goroutine per idle connection\n%s", stacks())

	for i, w := range conns {
		if i%2 == 0 {
			_ = w.write(wsOpClose, wsClosePayload(wsCloseNormal, "bye"))
		} else {
			w.nc.Close()
		}
	}
	require.Eventually(t, func() bool {
		return runtime.NumGoroutine() <= baseline+1 && !stacksContain("(*wsConn)", "(*liveStream)", "streamProgress")
	}, 10*time.Second, 50*time.Millisecond, "goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), baseline, stacks())
	require.Zero(t, a.live.stats.subscribers.Load())
	require.Zero(t, a.progress.Stats().Subscriptions)
	_, body := httpGet(t, b.url+"/metrics")
	require.Contains(t, body, `crmhub_subscription_connections{transport="websocket"} 0`)
	require.Contains(t, body, "crmhub_subscription_executions_total 1")
}

// TestDrainClosesWithServiceRestart: a node that shuts down closes every
// WebSocket with 1012, so clients reconnect to another node; it accepts no
// new one meanwhile.
func TestDrainClosesWithServiceRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, a := setupApp(t, false)
	integ := dig(b.mustGQL(t, b.ownerA, `mutation { createIntegration(input: {provider: TAVE, name: "T", credentials: {apiKey: "demo-10"}}) { integration { id } } }`, nil),
		"createIntegration", "integration", "id").(string)
	runID := dig(b.mustGQL(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": integ}), "startImport", "run", "id").(string)
	var clients []*wsClient
	for _, proto := range []string{protoTransportWS, protoLegacyWS} {
		w, err := dialWS(ctx, b.url, proto, nil, authInit(b.ownerA))
		require.NoError(t, err)
		defer w.c.CloseNow()
		require.NoError(t, w.subscribe(ctx, "1", progressQuery, map[string]any{"id": runID}))
		e, err := w.nextEvent(ctx)
		require.NoError(t, err)
		require.Equal(t, runID, dig(e.Data, "importProgress", "id"))
		clients = append(clients, w)
	}
	a.live.shutdown()
	for _, w := range clients {
		// A state may still be ahead of the close frame; a "complete" may
		// not: a client told its subscription is complete would not
		// resubscribe after it reconnects.
		var err error
		for err == nil {
			var m wsMessage
			m, err = w.next(ctx)
			if err == nil {
				require.Contains(t, []string{"next", "data"}, m.Type, "%s: before the close: %s %s", w.proto, m.Type, m.Payload)
			}
		}
		require.Equal(t, websocket.StatusCode(closeServiceRestart), closeCode(err), "%s: %v", w.proto, err)
	}
	_, err := dialWS(ctx, b.url, protoTransportWS, nil, authInit(b.ownerA))
	require.Error(t, err, "a draining node takes no new WebSocket")
	require.Eventually(t, func() bool { return a.live.stats.subscribers.Load() == 0 && a.live.stats.streams.Load() == 0 },
		5*time.Second, 20*time.Millisecond)
}
