package main

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wedsync/crmhub/db"
)

// metrics are crmhub's own Prometheus metrics, on a registry of their own
// (no global state).
type metrics struct {
	registry     *prometheus.Registry
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	gqlOps       *prometheus.CounterVec
	gqlDuration  *prometheus.HistogramVec
	// liveConns counts open subscription connections by transport
	// (websocket, sse).
	liveConns *prometheus.GaugeVec
	// keepAliveTimeouts counts WebSockets closed for not answering a ping.
	keepAliveTimeouts prometheus.Counter
	// sseEvents counts subscription events rendered for SSE streams (and
	// any other transport that executes per subscriber).
	sseEvents atomic.Int64
}

func newMetrics(pool *pgxpool.Pool, extra ...prometheus.Collector) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhub_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "crmhub_http_request_duration_seconds", Help: "HTTP request durations by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"route"}),
		gqlOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmhub_graphql_responses_total",
			Help: "GraphQL responses by operation type and outcome (subscriptions count each event).",
		}, []string{"operation", "outcome"}),
		gqlDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "crmhub_graphql_operation_duration_seconds", Help: "GraphQL query and mutation durations.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"operation"}),
		liveConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crmhub_subscription_connections", Help: "Open subscription connections by transport (websocket, sse).",
		}, []string{"transport"}),
		keepAliveTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crmhub_subscription_keepalive_timeouts_total",
			Help: "WebSocket connections closed because the peer did not answer a ping in time.",
		}),
	}
	m.liveConns.WithLabelValues("websocket")
	m.liveConns.WithLabelValues("sse")
	m.registry.MustRegister(m.httpRequests, m.httpDuration, m.gqlOps, m.gqlDuration, m.liveConns, m.keepAliveTimeouts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newPoolCollector(pool))
	m.registry.MustRegister(extra...)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// instrument counts and times requests under a fixed route label, so the
// label set stays small whatever paths clients send.
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.httpRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// gqlExtension records every GraphQL response.
type gqlExtension struct{ m *metrics }

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = gqlExtension{}

func (gqlExtension) ExtensionName() string { return "Metrics" }

func (gqlExtension) Validate(graphql.ExecutableSchema) error { return nil }

func (e gqlExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	op := "unknown"
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		if oc.Operation != nil {
			op = string(oc.Operation.Operation)
		}
		if op != "subscription" && resp != nil {
			e.m.gqlDuration.WithLabelValues(op).Observe(time.Since(oc.Stats.OperationStart).Seconds())
		}
	}
	outcome := "ok"
	if resp != nil && len(resp.Errors) > 0 {
		outcome = "error"
	}
	if op == "subscription" && resp != nil && outcome == "ok" && !isSharedStream(ctx) {
		e.m.sseEvents.Add(1)
	}
	e.m.gqlOps.WithLabelValues(op, outcome).Inc()
	return resp
}

// watchProgress exports the LISTEN hub's, the progress fan-out's and the
// live transport's counters.
func (m *metrics) watchProgress(hub *db.Hub, progress *db.ProgressHub, live *liveConns) {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	s := &live.stats
	m.registry.MustRegister(
		gauge("crmhub_subscriptions_active", "Open subscriptions: operations on WebSockets plus SSE streams.",
			func() int64 { return s.subscribers.Load() + s.sseStreams.Load() }),
		counter("crmhub_subscription_events_sent_total",
			"Run states sent to subscribers (each WebSocket subscriber counts; SSE counts each stream's events).",
			func() int64 { return s.sent.Load() + m.sseEvents.Load() }),
		counter("crmhub_subscription_events_coalesced_total",
			"Pending run states replaced by a newer one before a slow subscriber (or a shared execution) took them (latest wins).",
			func() int64 { return s.coalesced.Load() + progress.Stats().Coalesced }),
		gauge("crmhub_subscription_streams", "Running subscription executions on WebSockets, each shared by its subscribers.",
			s.streams.Load),
		counter("crmhub_subscription_executions_total",
			"Subscription executions started on WebSockets (subscribers who joined a running one start none).",
			s.executions.Load),
		counter("crmhub_subscription_events_stale_total",
			"Run states dropped because the subscriber already had one as new (duplicates after a resync).",
			func() int64 { return progress.Stats().Stale }),
		counter("crmhub_progress_notifications_total", "Run changes received from PostgreSQL (NOTIFY and resyncs).",
			func() int64 { return progress.Stats().Published }),
		counter("crmhub_progress_hub_reconnects_total", "Times the LISTEN connection was re-established.", hub.Reconnects),
		gauge("crmhub_progress_hub_connected", "1 while the LISTEN connection is up.", func() int64 {
			if hub.State().Connected {
				return 1
			}
			return 0
		}),
	)
}

// poolCollector exports pgxpool's statistics.
type poolCollector struct {
	pool                       *pgxpool.Pool
	total, idle, acquired, max *prometheus.Desc
	acquires, waits            *prometheus.Desc
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("crmhub_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:     pool,
		total:    d("conns", "Connections in the pool."),
		idle:     d("idle_conns", "Idle connections."),
		acquired: d("acquired_conns", "Connections in use."),
		max:      d("max_conns", "Pool size limit."),
		acquires: d("acquires_total", "Connections acquired."),
		waits:    d("empty_acquires_total", "Acquires that had to wait for a connection."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.max, c.acquires, c.waits} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
}
