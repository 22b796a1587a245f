package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wedsync/crmhub/resolvers"
)

// The two GraphQL-over-WebSocket subprotocols.
const (
	protoGraphQLTransportWS = "graphql-transport-ws"
	protoGraphQLWS          = "graphql-ws"
)

// graphql-transport-ws close codes (its PROTOCOL.md).
const (
	closeBadMessage   = 4400
	closeUnauthorized = 4401
	closeInitTimeout  = 4408
	closeDuplicateID  = 4409
	closeTooManyInits = 4429
)

// liveTransport is crmhub's GraphQL-over-WebSocket transport, in place of
// gqlgen's transport.Websocket. It speaks graphql-transport-ws and the
// legacy graphql-ws (also what a client offering no subprotocol gets, as
// with gqlgen). After the upgrade the HTTP handler returns; an idle
// connection then costs one goroutine (its reader) and a few small
// structures. Subscriptions go through shared streams (live_stream.go);
// queries and mutations sent on the socket run through gqlgen's executor
// like any other.
type liveTransport struct {
	l   *liveConns
	log *slog.Logger
	// initFunc authenticates connection_init: it returns the connection's
	// context, or an error that closes the connection with 4403.
	initFunc func(ctx context.Context, payload transport.InitPayload) (context.Context, error)
}

var _ graphql.Transport = liveTransport{}

// Supports implements graphql.Transport.
func (t liveTransport) Supports(r *http.Request) bool { return r.Header.Get("Upgrade") != "" }

// Do implements graphql.Transport: it upgrades the connection, starts its
// reader and returns.
func (t liveTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	proto, err := wsCheckUpgrade(r, []string{protoGraphQLWS, protoGraphQLTransportWS}, t.l.originPatterns)
	if err != nil {
		var he *wsHandshakeError
		status := http.StatusBadRequest
		if errors.As(err, &he) {
			status = he.status
		}
		http.Error(w, err.Error(), status)
		return
	}
	nc, br, err := wsHijack(w, r, proto, wsReadBufferSize)
	if err != nil {
		t.log.WarnContext(r.Context(), "WebSocket upgrade failed", "err", err)
		return
	}
	network, present := resolvers.NetworkFromHints(r.Header)
	// The connection outlives the request: keep the request's values (the
	// principal from the header, the request id, client hints), not its
	// cancellation.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &wsConn{
		l: t.l, t: &t, nc: nc, br: br, exec: exec, ctx: ctx, cancel: cancel,
		legacy: proto != protoGraphQLTransportWS,
		hint:   string(network) + strconv.FormatBool(present),
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { c.fd, c.hasFD = fd, true })
		}
	}
	c.lastRead.Store(time.Now().UnixNano())
	if !t.l.add(c) {
		_, _ = nc.Write(wsAppendFrame(nil, wsOpClose, wsClosePayload(closeServiceRestart, "server restarting")))
		nc.Close()
		cancel()
		return
	}
	go c.readLoop()
}

// wsConn is one WebSocket connection. Its reader goroutine reads and
// handles client messages; everything it sends goes through the writer
// pool: frames are queued here and a writer flushes them.
type wsConn struct {
	l  *liveConns
	t  *liveTransport
	nc net.Conn
	// fd is nc's socket descriptor (when hasFD), for writes that never
	// wait; it is written only under mu, and closed only under mu.
	fd     uintptr
	hasFD  bool
	br     *bufio.Reader
	exec   graphql.GraphExecutor
	legacy bool
	// hint is the network quality the upgrade request's client hints gave:
	// part of a subscription's view.
	hint string

	// ctx carries the principal once connection_init is done; cancelled
	// when the connection ends.
	ctx    context.Context
	cancel context.CancelFunc

	// lastRead is when a frame last arrived (UnixNano).
	lastRead atomic.Int64
	// closing is set once a close frame is queued.
	closing atomic.Bool
	// Keep-alive state, touched only by the ticker.
	nextPing time.Time
	pingSent time.Time

	mu       sync.Mutex
	initDone bool
	ops      map[string]*wsOp
	// ctrl are whole frames to send before any operation's payload.
	ctrl [][]byte
	// dirty are the operations with something pending.
	dirty []*wsOp
	// queued is set while the connection is in the write queue, being
	// flushed, or set aside after a short write: one writer at a time.
	queued bool
	// out is what is being written; outOff how much of it went.
	out          []byte
	outBuf       *[]byte
	outOff       int
	blockedSince time.Time
	closeAfter   bool
	closeFrame   []byte
	closeWritten bool
	dead         bool
	initTimer    *time.Timer
}

// wsOp is one operation of a connection: a subscription (a subscriber of a
// stream) or a query or mutation running once.
type wsOp struct {
	c  *wsConn
	id string
	// idJSON is id as a JSON string, made once for every envelope.
	idJSON []byte
	stream *liveStream
	cancel context.CancelFunc

	// Under c.mu: the latest payload not yet written (latest wins), the
	// messages that end the operation, and whether it is in c.dirty.
	pending  *rendered
	terminal [][]byte
	inDirty  bool
	done     bool
}

// rendered is one response, rendered to JSON once for every subscriber.
type rendered struct {
	payload []byte
	// data is true for a response without errors (a run state).
	data bool
}

// wsClientMessage is a protocol message from the client.
type wsClientMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (c *wsConn) readLoop() {
	defer c.kill()
	c.mu.Lock()
	c.initTimer = time.AfterFunc(wsInitTimeout, func() {
		c.mu.Lock()
		done := c.initDone
		c.mu.Unlock()
		if !done {
			c.closeWith(closeInitTimeout, "Connection initialisation timeout")
		}
	})
	c.mu.Unlock()
	var message []byte
	var fragmented bool
	for {
		fin, op, payload, err := wsReadFrame(c.br, wsReadLimit)
		if err != nil {
			switch {
			case errors.Is(err, errWSProtocol):
				c.closeWith(wsCloseProtocolError, "protocol error")
			case errors.Is(err, errWSTooBig):
				c.closeWith(wsCloseTooBig, "message too big")
			default:
				return // gone, or the close handshake is over
			}
			c.drainReads()
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		switch op {
		case wsOpPing:
			c.sendFrame(wsAppendFrame(nil, wsOpPong, payload))
			continue
		case wsOpPong:
			continue
		case wsOpClose:
			code, reason := wsCloseNormal, ""
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
				reason = string(payload[2:])
			}
			if code == wsCloseNoStatus {
				code = wsCloseNormal
			}
			c.closeWith(code, reason)
			c.drainReads()
			return
		case wsOpText, wsOpBinary:
			if fragmented {
				c.closeWith(wsCloseProtocolError, "expected a continuation frame")
				c.drainReads()
				return
			}
			message, fragmented = payload, !fin
		case wsOpContinuation:
			if !fragmented {
				c.closeWith(wsCloseProtocolError, "unexpected continuation frame")
				c.drainReads()
				return
			}
			if int64(len(message)+len(payload)) > wsReadLimit {
				c.closeWith(wsCloseTooBig, "message too big")
				c.drainReads()
				return
			}
			message, fragmented = append(message, payload...), !fin
		default:
			c.closeWith(wsCloseProtocolError, "unknown opcode")
			c.drainReads()
			return
		}
		if fragmented || c.closing.Load() {
			continue
		}
		c.handle(message)
		message = nil
		if c.closing.Load() {
			c.drainReads()
			return
		}
	}
}

// drainReads reads (and drops) frames until the peer closes or the close
// grace ends, so that our close frame reaches it before the connection
// goes away.
func (c *wsConn) drainReads() {
	_ = c.nc.SetReadDeadline(time.Now().Add(wsCloseGrace))
	for {
		_, op, _, err := wsReadFrame(c.br, wsReadLimit)
		if err != nil || op == wsOpClose {
			return
		}
	}
}

// handle runs one client message.
func (c *wsConn) handle(raw []byte) {
	var m wsClientMessage
	if err := json.Unmarshal(raw, &m); err != nil || m.Type == "" {
		c.protocolError("invalid message")
		return
	}
	c.mu.Lock()
	initDone := c.initDone
	c.mu.Unlock()
	switch m.Type {
	case "connection_init":
		if initDone {
			if c.legacy {
				return // graphql-ws has nothing to say about it
			}
			c.closeWith(closeTooManyInits, "Too many initialisation requests")
			return
		}
		c.init(m.Payload)
	case "ping":
		if c.legacy {
			c.protocolError("unexpected message ping")
			return
		}
		c.sendMessage(wsEnvelope{Type: "pong", Payload: m.Payload})
	case "pong":
	case "subscribe", "start":
		if (m.Type == "subscribe") == c.legacy {
			c.protocolError("unexpected message " + m.Type)
			return
		}
		if !initDone {
			c.closeWith(closeUnauthorized, "Unauthorized")
			return
		}
		c.start(m.ID, m.Payload)
	case "complete", "stop":
		if (m.Type == "complete") == c.legacy {
			c.protocolError("unexpected message " + m.Type)
			return
		}
		c.stop(m.ID)
	case "connection_terminate":
		c.closeWith(wsCloseNormal, "terminated")
	default:
		c.protocolError("unexpected message " + m.Type)
	}
}

// protocolError answers a message the subprotocol does not allow: 4400 on
// graphql-transport-ws; connection_error and 1002 on graphql-ws, as gqlgen
// did.
func (c *wsConn) protocolError(msg string) {
	if !c.legacy {
		c.closeWith(closeBadMessage, msg)
		return
	}
	c.sendConnectionError(msg)
	c.closeWith(wsCloseProtocolError, msg)
}

func (c *wsConn) sendConnectionError(msg string) {
	if !c.legacy {
		return
	}
	b, _ := json.Marshal(&gqlerror.Error{Message: msg})
	c.sendMessage(wsEnvelope{Type: "connection_error", Payload: b})
}

func (c *wsConn) init(raw json.RawMessage) {
	var payload transport.InitPayload
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &payload); err != nil {
			c.protocolError("invalid connection_init payload")
			return
		}
	}
	ctx, err := c.t.initFunc(c.ctx, payload)
	if err != nil {
		c.sendConnectionError(err.Error())
		c.closeWith(closeForbidden, "Forbidden")
		return
	}
	c.mu.Lock()
	c.ctx = ctx
	c.initDone = true
	if c.initTimer != nil {
		c.initTimer.Stop()
		c.initTimer = nil
	}
	c.mu.Unlock()
	c.sendMessage(wsEnvelope{Type: "connection_ack"})
	if c.legacy {
		c.sendMessage(wsEnvelope{Type: "ka"})
	}
}

// start begins an operation: a subscription joins (or starts) a stream; a
// query or mutation runs once in a goroutine of its own.
func (c *wsConn) start(id string, raw json.RawMessage) {
	if id == "" {
		c.protocolError("an operation needs an id")
		return
	}
	idJSON, _ := json.Marshal(id)
	op := &wsOp{c: c, id: id, idJSON: idJSON}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if _, dup := c.ops[id]; dup {
		c.mu.Unlock()
		if c.legacy {
			c.sendError(id, &gqlerror.Error{Message: "duplicate operation id " + id})
			return
		}
		c.closeWith(closeDuplicateID, "Subscriber for "+id+" already exists")
		return
	}
	if c.ops == nil {
		c.ops = map[string]*wsOp{}
	}
	c.ops[id] = op
	baseCtx := c.ctx
	c.mu.Unlock()

	start := graphql.Now()
	ctx := graphql.StartOperationTrace(baseCtx)
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		op.finish(c.errorMessage(id, &gqlerror.Error{Message: "invalid json"}), c.completeMessage(id))
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		var first []byte
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			first = c.errorMessage(id, resp.Errors...)
		} else {
			b, _ := json.Marshal(&graphql.Response{Errors: errs})
			first = c.nextMessage(id, b)
		}
		op.finish(first, c.completeMessage(id))
		return
	}
	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		c.l.subscribe(op, ctx, c.exec, rc)
		return
	}
	opCtx, cancel := context.WithCancel(graphql.WithOperationContext(ctx, rc))
	c.mu.Lock()
	op.cancel = cancel
	c.mu.Unlock()
	go func() {
		defer cancel()
		var msgs [][]byte
		func() {
			defer func() {
				if r := recover(); r != nil {
					msgs = append(msgs, c.errorMessage(id, gqlErrorOf(rc.Recover(opCtx, r))))
				}
			}()
			responses, respCtx := c.exec.DispatchOperation(opCtx, rc)
			for resp := responses(respCtx); resp != nil; resp = responses(respCtx) {
				b, err := json.Marshal(resp)
				if err != nil {
					panic(err)
				}
				msgs = append(msgs, c.nextMessage(id, b))
			}
		}()
		op.finish(append(msgs, c.completeMessage(id))...)
	}()
}

func gqlErrorOf(err error) *gqlerror.Error {
	var gqlerr *gqlerror.Error
	if errors.As(err, &gqlerr) {
		return gqlerr
	}
	gqlerr = &gqlerror.Error{Message: "internal system error"}
	if err != nil {
		gqlerr.Message = err.Error()
	}
	return gqlerr
}

// stop ends an operation at the client's request. graphql-ws expects a
// complete in return (gqlgen sent one); graphql-transport-ws does not.
func (c *wsConn) stop(id string) {
	c.mu.Lock()
	op := c.ops[id]
	c.mu.Unlock()
	if op == nil {
		return
	}
	var msgs [][]byte
	if c.legacy {
		msgs = append(msgs, c.completeMessage(id))
	}
	op.finish(msgs...)
}

// finish ends the operation: it leaves its stream (or cancels its
// execution) and queues msgs after whatever payload is pending.
func (op *wsOp) finish(msgs ...[]byte) {
	c := op.c
	c.mu.Lock()
	if op.done {
		c.mu.Unlock()
		return
	}
	op.done = true
	if c.ops[op.id] == op {
		delete(c.ops, op.id)
	}
	cancel, stream := op.cancel, op.stream
	// A closing connection says nothing more: after a drain's 1012 the
	// client must resubscribe elsewhere, which a "complete" would stop.
	if len(msgs) > 0 && !c.dead && !c.closeAfter {
		op.terminal = msgs
		op.markDirtyLocked()
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if stream != nil {
		stream.leave(op)
	}
}

// offer hands the operation a new payload, replacing one not yet written:
// a slow socket holds at most one pending payload per subscription.
// A connection that needs a writer is appended to batch (when not nil),
// for the caller to queue with others in one go.
func (op *wsOp) offer(r *rendered, batch *[]*wsConn) {
	c := op.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.done || c.dead {
		return
	}
	if op.pending != nil {
		c.l.stats.coalesced.Add(1)
	}
	op.pending = r
	if !op.inDirty {
		op.inDirty = true
		c.dirty = append(c.dirty, op)
	}
	if c.queued || c.dead {
		return
	}
	c.queued = true
	if batch != nil {
		*batch = append(*batch, c)
		return
	}
	c.l.wq.push(c)
}

func (op *wsOp) markDirtyLocked() {
	if !op.inDirty {
		op.inDirty = true
		op.c.dirty = append(op.c.dirty, op)
	}
	op.c.scheduleLocked()
}

// wsEnvelope is a protocol message to the client.
type wsEnvelope struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (c *wsConn) sendMessage(m wsEnvelope) {
	b, _ := json.Marshal(m)
	c.sendFrame(wsAppendFrame(nil, wsOpText, b))
}

// sendFrame queues a whole frame ahead of operation payloads.
func (c *wsConn) sendFrame(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.closeAfter {
		return
	}
	c.ctrl = append(c.ctrl, frame)
	c.scheduleLocked()
}

func (c *wsConn) dataType() string {
	if c.legacy {
		return "data"
	}
	return "next"
}

// nextMessage is a whole data message (not a frame) for id.
func (c *wsConn) nextMessage(id string, payload []byte) []byte {
	b, _ := json.Marshal(wsEnvelope{ID: id, Type: c.dataType(), Payload: payload})
	return b
}

func (c *wsConn) completeMessage(id string) []byte {
	b, _ := json.Marshal(wsEnvelope{ID: id, Type: "complete"})
	return b
}

func (c *wsConn) errorMessage(id string, errs ...*gqlerror.Error) []byte {
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	p, _ := json.Marshal(list)
	b, _ := json.Marshal(wsEnvelope{ID: id, Type: "error", Payload: p})
	return b
}

func (c *wsConn) sendError(id string, errs ...*gqlerror.Error) {
	c.sendFrame(wsAppendFrame(nil, wsOpText, c.errorMessage(id, errs...)))
}

func (c *wsConn) scheduleLocked() {
	if c.queued || c.dead {
		return
	}
	c.queued = true
	c.l.wq.push(c)
}

// outBufs recycles write buffers, so an idle connection holds none.
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// flush writes what the connection has pending; it runs on a writer.
// Payloads are wrapped in the operation's envelope here, per subscriber:
// the payload itself was rendered once for all. It returns how many run
// states it put on the wire, for the writer to count.
func (c *wsConn) flush() (sent int64) {
	c.mu.Lock()
	if c.dead || c.closeWritten && c.out == nil {
		// Nothing goes after a close frame.
		c.ctrl, c.dirty = nil, nil
		c.queued = false
		c.mu.Unlock()
		return
	}
	if c.out == nil {
		c.outBuf = outBufs.Get().(*[]byte)
		buf := (*c.outBuf)[:0]
		for _, f := range c.ctrl {
			buf = append(buf, f...)
		}
		c.ctrl = nil
		for _, op := range c.dirty {
			op.inDirty = false
			if op.pending != nil {
				buf = c.appendNext(buf, op.idJSON, op.pending.payload)
				if op.pending.data {
					sent++
				}
				op.pending = nil
			}
			for _, m := range op.terminal {
				buf = wsAppendFrame(buf, wsOpText, m)
			}
			op.terminal = nil
		}
		clear(c.dirty)
		c.dirty = c.dirty[:0]
		if cap(c.dirty) > 8 {
			c.dirty = nil
		}
		if c.closeAfter && len(c.closeFrame) > 0 {
			buf = append(buf, c.closeFrame...)
			c.closeFrame = nil
			c.closeWritten = true
		}
		c.out, c.outOff = buf, 0
	}
	out := c.out[c.outOff:]
	closeWritten := c.closeWritten
	var n int
	var err error
	switch {
	case len(out) == 0:
	case c.hasFD:
		// Under c.mu: kill closes the socket under it too, so the
		// descriptor is this connection's for as long as we write.
		n, err = sendAll(c.fd, out)
	default:
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(wsWriteSlice))
		n, err = c.nc.Write(out)
		c.mu.Lock()
	}
	c.outOff += n
	if err != nil {
		var ne net.Error
		if (errors.Is(err, errWouldBlock) || errors.As(err, &ne) && ne.Timeout()) && !c.dead {
			// The peer reads slowly: set the rest aside (still queued, so
			// nobody else writes) and come back on the next tick.
			if c.blockedSince.IsZero() {
				c.blockedSince = time.Now()
			}
			c.mu.Unlock()
			c.l.setBlocked(c)
			return
		}
		c.queued = false
		c.mu.Unlock()
		c.kill()
		return
	}
	if cap(c.out) <= 64<<10 {
		*c.outBuf = c.out[:0]
		outBufs.Put(c.outBuf)
	}
	c.outBuf = nil
	c.out, c.outOff = nil, 0
	c.blockedSince = time.Time{}
	more := len(c.ctrl) > 0 || len(c.dirty) > 0
	if more && !closeWritten {
		c.l.wq.push(c) // still queued
		c.mu.Unlock()
		return
	}
	c.queued = false
	c.mu.Unlock()
	if closeWritten {
		// Our close frame is out: tell the peer we are done writing, and
		// give it a moment to answer before the reader lets go.
		if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(wsCloseGrace))
	}
	return sent
}

// errWouldBlock is a write that found the socket's buffer full.
var errWouldBlock = errors.New("the socket's send buffer is full")

// sendAll writes p to the socket fd without ever waiting: a peer that
// reads slowly gets what fits in its socket buffer, and errWouldBlock says
// the rest waits for the next retry. It goes straight to the descriptor,
// not through Go's poller: no deadline timer and no poller bookkeeping per
// write.
func sendAll(fd uintptr, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := sockSend(fd, p[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return n, errWouldBlock
		case err != nil:
			return n, err
		case m <= 0:
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// retryWrite hands a connection whose write was set aside back to the
// writers, or closes it when its peer has not read for as long as a dead
// peer is given.
func (c *wsConn) retryWrite(now time.Time) {
	c.mu.Lock()
	since := c.blockedSince
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return
	}
	if now.Sub(since) > c.l.pingInterval+c.l.pongTimeout {
		c.l.m.keepAliveTimeouts.Inc()
		c.kill()
		return
	}
	c.l.wq.push(c)
}

func (c *wsConn) appendNext(dst []byte, idJSON, payload []byte) []byte {
	prefix, mid := `{"id":`, `,"type":"next","payload":`
	if c.legacy {
		mid = `,"type":"data","payload":`
	}
	n := len(prefix) + len(idJSON) + len(mid) + len(payload) + 1
	dst = wsAppendFrameHeader(dst, wsOpText, n)
	dst = append(dst, prefix...)
	dst = append(dst, idJSON...)
	dst = append(dst, mid...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// closeWith sends a close frame after what is already queued; the
// connection ends when the peer answers, or after wsCloseGrace.
func (c *wsConn) closeWith(code int, reason string) {
	if c.closing.Swap(true) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.closeAfter = true
	c.closeFrame = wsAppendFrame(nil, wsOpClose, wsClosePayload(code, reason))
	c.scheduleLocked()
	// A peer that never reads must not keep the connection: the reader
	// gives up after the grace.
	_ = c.nc.SetReadDeadline(time.Now().Add(wsCloseGrace + wsWriteSlice))
}

// keepAlive runs on the ticker: it closes the connection if its peer has
// not answered the oldest unanswered ping within the timeout, and pings it
// when it is due (a WebSocket ping, plus "ping" on graphql-transport-ws or
// "ka" on graphql-ws once the connection is acknowledged).
func (c *wsConn) keepAlive(now time.Time) {
	last := time.Unix(0, c.lastRead.Load())
	if !c.pingSent.IsZero() && last.Before(c.pingSent) && now.Sub(c.pingSent) > c.l.pongTimeout {
		c.l.m.keepAliveTimeouts.Inc()
		c.kill()
		return
	}
	if c.nextPing.IsZero() {
		c.nextPing = now.Add(c.l.pingInterval)
		return
	}
	if now.Before(c.nextPing) || c.closing.Load() {
		return
	}
	c.nextPing = now.Add(c.l.pingInterval)
	if c.pingSent.IsZero() || !last.Before(c.pingSent) {
		c.pingSent = now
	}
	c.mu.Lock()
	initDone := c.initDone
	c.mu.Unlock()
	frame := wsAppendFrame(nil, wsOpPing, nil)
	switch {
	case !initDone:
	case c.legacy:
		frame = wsAppendFrame(frame, wsOpText, []byte(`{"type":"ka"}`))
	default:
		frame = wsAppendFrame(frame, wsOpText, []byte(`{"type":"ping"}`))
	}
	c.sendFrame(frame)
}

// kill ends the connection at once: its operations end, the socket is
// closed and the connection forgotten. It is safe to call more than once.
func (c *wsConn) kill() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	ops := make([]*wsOp, 0, len(c.ops))
	for _, op := range c.ops {
		ops = append(ops, op)
	}
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	c.ctrl, c.dirty = nil, nil
	// Closed under mu: a writer holds mu while it writes to the
	// descriptor, which must not be closed (and reused) meanwhile.
	_ = c.nc.Close()
	c.mu.Unlock()
	c.closing.Store(true)
	c.cancel()
	for _, op := range ops {
		op.finish()
	}
	c.l.forget(c)
}

func (c *wsConn) String() string { return fmt.Sprintf("ws %s", c.nc.RemoteAddr()) }
