package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wedsync/crmhub/auth"
)

// Render once, write many. Subscribers on WebSockets whose operation is
// the same (normalised document, operation name and variables) and whose
// view is the same (organization, role, client-hinted network) share one
// execution: one resolver call, one mailbox in the progress hub, one JSON
// rendering per event. Each subscriber then only gets its own envelope
// (its operation id) around the shared bytes, through its latest-wins slot.
//
// SUPPORT principals never share: their reads are audited per operation
// (resolvers.Audit), so each gets its own execution and its own record.

// streamRegistry holds the shared streams by key.
type streamRegistry struct {
	mu    sync.Mutex
	byKey map[string]*liveStream
}

// liveStream is one execution and its subscribers.
type liveStream struct {
	l      *liveConns
	key    string
	cancel context.CancelFunc

	mu   sync.Mutex
	subs map[*wsOp]struct{}
	// last is the latest payload: a subscriber who joins gets it first.
	last *rendered
	// closing is set when the last subscriber left; done when the
	// execution ended. Nobody joins either.
	closing bool
	done    bool
}

// streamKey is the sharing key of an operation for the principal of ctx,
// or "" when it must not be shared.
func (c *wsConn) streamKey(ctx context.Context, rc *graphql.OperationContext) string {
	p := auth.PrincipalFrom(ctx)
	if p == nil || p.Role == auth.RoleSupport || rc.Doc == nil || !snapshotStream(rc.Operation) {
		return ""
	}
	vars, err := json.Marshal(rc.Variables) // map keys sorted: canonical
	if err != nil {
		return ""
	}
	var doc strings.Builder
	formatter.NewFormatter(&doc).FormatQueryDocument(rc.Doc)
	return strconv.FormatInt(p.OrgID, 10) + "\x00" + string(p.Role) + "\x00" + c.hint + "\x00" +
		rc.OperationName + "\x00" + string(vars) + "\x00" + doc.String()
}

// snapshotStream reports whether each event of op is the whole current
// state, so that the last one is all a joining subscriber needs: true for
// importProgress. importRunsUpdated opens with one event per active run,
// which a joiner would miss, so its subscribers do not share.
func snapshotStream(op *ast.OperationDefinition) bool {
	if op == nil || len(op.SelectionSet) == 0 {
		return false
	}
	for _, sel := range op.SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok || f.Name != "importProgress" {
			return false
		}
	}
	return true
}

// subscribe makes op a subscriber: of the running stream of its key if
// there is one (it gets the stream's last payload first), else of a new
// stream it starts.
func (l *liveConns) subscribe(op *wsOp, ctx context.Context, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	key := ""
	if l.shareable() {
		key = op.c.streamKey(ctx, rc)
	}
	if key != "" {
		l.streams.mu.Lock()
		if s := l.streams.byKey[key]; s != nil && s.join(op) {
			l.streams.mu.Unlock()
			return
		}
	}
	s := &liveStream{l: l, key: key, subs: map[*wsOp]struct{}{op: {}}}
	l.stats.subscribers.Add(1)
	// The execution belongs to no subscriber: it ends when the last one
	// leaves, or when the node drains.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	c := op.c
	c.mu.Lock()
	op.stream = s
	done := op.done
	c.mu.Unlock()
	if key != "" {
		l.streams.byKey[key] = s
		l.streams.mu.Unlock()
	}
	if done { // the connection went while we set up
		s.leave(op)
	}
	go s.run(sctx, exec, rc)
}

// join adds op unless the stream is ending; it hands op the last payload.
// The registry's lock is held.
func (s *liveStream) join(op *wsOp) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.done {
		return false
	}
	c := op.c
	c.mu.Lock()
	op.stream = s
	done := op.done
	c.mu.Unlock()
	if done {
		return true // it left already; nothing to add
	}
	s.subs[op] = struct{}{}
	s.l.stats.subscribers.Add(1)
	if s.last != nil {
		op.offer(s.last, nil)
	}
	return true
}

// leave removes a subscriber; the last one out ends the execution.
func (s *liveStream) leave(op *wsOp) {
	s.mu.Lock()
	if _, ok := s.subs[op]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.subs, op)
	s.l.stats.subscribers.Add(-1)
	last := len(s.subs) == 0 && !s.done
	if last {
		s.closing = true
	}
	s.mu.Unlock()
	if last {
		s.unregister()
		s.cancel()
	}
}

func (s *liveStream) unregister() {
	if s.key == "" {
		return
	}
	s.l.streams.mu.Lock()
	if s.l.streams.byKey[s.key] == s {
		delete(s.l.streams.byKey, s.key)
	}
	s.l.streams.mu.Unlock()
}

// run is the stream's goroutine: it executes the subscription once, renders
// every response once and offers the bytes to every subscriber, then ends
// each subscriber's operation.
func (s *liveStream) run(ctx context.Context, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	s.l.stats.streams.Add(1)
	defer s.l.stats.streams.Add(-1)
	s.l.stats.executions.Add(1)
	stopOnDrain := context.AfterFunc(s.l.drain, s.cancel)
	defer stopOnDrain()
	defer s.cancel()
	ctx = withSharedStream(graphql.WithOperationContext(ctx, rc))

	var failure *gqlerror.Error
	func() {
		defer func() {
			if r := recover(); r != nil {
				failure = gqlErrorOf(rc.Recover(ctx, r))
			}
		}()
		responses, respCtx := exec.DispatchOperation(ctx, rc)
		for resp := responses(respCtx); resp != nil; resp = responses(respCtx) {
			b, err := json.Marshal(resp)
			if err != nil {
				panic(err)
			}
			s.publish(&rendered{payload: b, data: len(resp.Errors) == 0})
		}
	}()
	s.end(failure)
}

// publish offers r to every subscriber and queues their connections for
// the writers, a batch at a time (one lock and one wake-up per batch).
func (s *liveStream) publish(r *rendered) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = r
	batch := make([]*wsConn, 0, publishBatch)
	for op := range s.subs {
		op.offer(r, &batch)
		if len(batch) == publishBatch {
			s.l.wq.pushMany(batch)
			batch = batch[:0]
		}
	}
	s.l.wq.pushMany(batch)
}

// publishBatch is how many connections publish queues at once.
const publishBatch = 128

// end completes every subscriber's operation (after its pending payload),
// with an error first if the execution failed.
func (s *liveStream) end(failure *gqlerror.Error) {
	s.mu.Lock()
	s.done = true
	subs := make([]*wsOp, 0, len(s.subs))
	for op := range s.subs {
		subs = append(subs, op)
	}
	s.mu.Unlock()
	s.unregister()
	for _, op := range subs {
		var msgs [][]byte
		if failure != nil {
			msgs = append(msgs, op.c.errorMessage(op.id, failure))
		}
		op.finish(append(msgs, op.c.completeMessage(op.id))...)
	}
}

type sharedStreamKey struct{}

// withSharedStream marks the context of a WebSocket stream's execution, so
// that the metrics count its events per subscriber, where they are
// written, rather than once here.
func withSharedStream(ctx context.Context) context.Context {
	return context.WithValue(ctx, sharedStreamKey{}, true)
}

func isSharedStream(ctx context.Context) bool {
	v, _ := ctx.Value(sharedStreamKey{}).(bool)
	return v
}
