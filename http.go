package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/db"
)

type requestIDKey struct{}

// withRequestID gives every request an id (the caller's X-Request-ID when it
// sends a sane one), echoes it in the response and logs every request with
// it.
func withRequestID(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(ctx))
		log.LogAttrs(ctx, slog.LevelInfo, "http request",
			slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}

// logHandler adds the request id to every log record made with a request's
// context.
type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// statusRecorder remembers the status code, and still lets WebSocket
// upgrades hijack the connection and SSE flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		s.status = http.StatusSwitchingProtocols
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// livez answers as long as the process serves HTTP; it checks nothing else,
// so a database outage does not get every node restarted.
func livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// hubUnreadyAfter is how long the LISTEN hub may be down before the node
// reports itself unready. A blip (a PostgreSQL restart, which the hub rides
// out in seconds) should not take a node out of the load balancer; a hub
// that stays down means subscribers on this node see no progress, and they
// are better off reconnecting to another node.
const hubUnreadyAfter = 30 * time.Second

// readyz answers 200 when the database answers a ping within a second and
// the progress hub listens (or has been reconnecting for less than
// hubUnreadyAfter). The body says which part is not.
func readyz(pool *pgxpool.Pool, hub *db.Hub) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		status, body := http.StatusOK, "database: ok\n"
		if err := pool.Ping(ctx); err != nil {
			status, body = http.StatusServiceUnavailable, "database: unavailable\n"
		}
		switch s := hub.State(); {
		case s.Connected:
			body += "progress hub: ok\n"
		default:
			down := time.Since(s.Since).Round(time.Second)
			body += fmt.Sprintf("progress hub: reconnecting (down %s)\n", down)
			if down > hubUnreadyAfter {
				status = http.StatusServiceUnavailable
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}
