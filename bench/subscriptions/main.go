// Command subscriptions measures live import progress on one node over
// loopback: N concurrent WebSocket (graphql-transport-ws) subscribers to one
// running import. It starts `crmhub serve` as a child process on a database
// of its own, reports the server's memory per idle subscriber (RSS delta /
// subscribers) and the commit-to-receipt latency of progress events (p50,
// p99), and checks the targets: N = 10,000 held on 2 cores, ≤ 16 KiB per
// idle subscriber, p99 ≤ 200 ms at 10,000.
//
// Progress events are committed by the benchmark itself exactly as the
// import worker commits a page: one transaction that updates the run's
// counters and seq and calls pg_notify with the run. That makes the event
// rate and the commit time exact.
//
//	go run ./bench/subscriptions                     # 1,000, 5,000 and 10,000
//	go run ./bench/subscriptions -n 2000 -events 10  # quick run
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/db"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type options struct {
	levels   []int
	events   int
	interval time.Duration
	dbURL    string
}

type result struct {
	subscribers  int
	connectTime  time.Duration
	rssBefore    int64
	rssAfter     int64
	perSub       float64
	events       int
	received     int64
	missedFinal  int64
	p50, p99     time.Duration
	max          time.Duration
	serverCPU    time.Duration
	heldAtTheEnd int64
	goroutines   float64
	heapPerSub   float64
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("subscriptions", flag.ContinueOnError)
	levels := fs.String("n", "1000,5000,10000", "subscriber counts, comma separated")
	events := fs.Int("events", 30, "progress events committed per level")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between progress events (an import page)")
	dbURL := fs.String("db", cmpOr(os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres"), "PostgreSQL admin URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := options{events: *events, interval: *interval, dbURL: *dbURL}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -n %q", s)
		}
		opts.levels = append(opts.levels, n)
	}
	if err := raiseFDLimit(); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "crmhub-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "crmhub")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("error building crmhub: %w", err)
	}

	var results []result
	for _, n := range opts.levels {
		r, err := level(ctx, bin, tmp, opts, n)
		if err != nil {
			return fmt.Errorf("%d subscribers: %w", n, err)
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "done: %d subscribers\n", n)
	}

	fmt.Printf("\nLive progress: one node, loopback, graphql-transport-ws subscribers to one running import\n")
	fmt.Printf("(%d events per level, one every %s; %d CPUs)\n\n", opts.events, opts.interval, numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subscribers\tconnect\tserver RSS idle\tRSS per idle subscriber\theap per idle subscriber\tgoroutines per subscriber\tevents received\tp50\tp99\tmax\tserver CPU\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%d MiB\t%.1f KiB\t%.1f KiB\t%.1f\t%d/%d\t%s\t%s\t%s\t%s\t\n", r.subscribers, r.connectTime.Round(100*time.Millisecond),
			r.rssAfter>>20, r.perSub/1024, r.heapPerSub/1024, r.goroutines, r.received, int64(r.subscribers)*int64(r.events),
			r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.max.Round(time.Millisecond), r.serverCPU.Round(10*time.Millisecond))
	}
	tw.Flush()
	fmt.Println()
	ok := true
	for _, r := range results {
		if r.subscribers != 10000 {
			continue
		}
		check := func(name string, pass bool, got string) {
			mark := "ok"
			if !pass {
				mark, ok = "MISSED", false
			}
			fmt.Printf("target %-34s %-7s (%s)\n", name, mark, got)
		}
		check("10,000 subscribers held", r.heldAtTheEnd == 10000 && r.missedFinal == 0, fmt.Sprintf("%d held, %d missed the last event", r.heldAtTheEnd, r.missedFinal))
		check("<= 16 KiB per idle subscriber", r.perSub <= 16*1024, fmt.Sprintf("%.1f KiB", r.perSub/1024))
		check("p99 <= 200 ms at 10,000", r.p99 <= 200*time.Millisecond, r.p99.Round(time.Millisecond).String())
	}
	if !ok {
		fmt.Println("\nsome targets were missed (see above)")
	}
	return nil
}

// level runs one server and n subscribers.
func level(ctx context.Context, bin, tmp string, opts options, n int) (result, error) {
	res := result{subscribers: n, events: opts.events}
	dbName := fmt.Sprintf("crmhub_bench_%d_%d", os.Getpid(), n)
	admin, err := pgx.Connect(ctx, opts.dbURL)
	if err != nil {
		return res, fmt.Errorf("error connecting to %s: %w", opts.dbURL, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return res, fmt.Errorf("error creating database: %w", err)
	}
	defer admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)") //nolint:errcheck
	dbURL, err := withDatabase(opts.dbURL, dbName)
	if err != nil {
		return res, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	addr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "CRMHUB_ADDR="+addr, "CRMHUB_LOG_LEVEL=error",
		"CRMHUB_SECRET_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)),
		// No worker: the benchmark commits the progress itself.
		"CRMHUB_MAX_WORKERS=0",
		// Thousands of subscribers share one token and one IP here.
		"CRMHUB_RATE_LIMIT_PER_MINUTE=0", "CRMHUB_ANON_RATE_LIMIT_PER_MINUTE=0")
	command := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("crmhub %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := command("migrate"); err != nil {
		return res, err
	}
	if _, err := command("org", "create", "--slug", "bench", "--name", "Bench"); err != nil {
		return res, err
	}
	token, err := command("token", "create", "--org", "bench", "--role", "OWNER")
	if err != nil {
		return res, err
	}

	logs, err := os.Create(filepath.Join(tmp, fmt.Sprintf("server-%d.log", n)))
	if err != nil {
		return res, err
	}
	defer logs.Close()
	srv := exec.Command(bin, "serve")
	srv.Env = env
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		return res, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	base := "http://" + addr
	if err := waitReady(ctx, base); err != nil {
		return res, err
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	runID, runGID, err := startRun(ctx, base, token)
	if err != nil {
		return res, err
	}

	// Warm up the server (one subscriber, one event) so the baseline holds
	// what any serving node holds.
	warm, err := subscribe(ctx, base, token, runGID, nil)
	if err != nil {
		return res, err
	}
	if _, err := commitProgress(ctx, pool, runID); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond)
	warm.close()
	time.Sleep(500 * time.Millisecond)
	res.rssBefore, err = rss(srv.Process.Pid)
	if err != nil {
		return res, err
	}
	cpuBefore, _ := cpuTime(srv.Process.Pid)
	gBefore, hBefore := serverStats(ctx, base)

	// Connect n subscribers, 64 at a time.
	rec := &receipts{byClient: make([][]received, n)}
	clients := make([]*client, n)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := subscribe(ctx, base, token, runGID, func(seq int64, at time.Time) {
					rec.byClient[i] = append(rec.byClient[i], received{seq, at})
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				clients[i] = c
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		return res, fmt.Errorf("error connecting subscribers: %w", err)
	}
	// Every subscriber has its snapshot once it has seq of the warm-up.
	deadline := time.Now().Add(2 * time.Minute)
	for !allHaveSnapshot(clients) {
		if time.Now().After(deadline) {
			return res, errors.New("not every subscriber got its snapshot")
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.connectTime = time.Since(start)
	// Idle: let the server settle, then read its memory.
	time.Sleep(3 * time.Second)
	res.rssAfter, err = rss(srv.Process.Pid)
	if err != nil {
		return res, err
	}
	res.perSub = float64(res.rssAfter-res.rssBefore) / float64(n)
	gAfter, hAfter := serverStats(ctx, base)
	res.goroutines = (gAfter - gBefore) / float64(n)
	res.heapPerSub = (hAfter - hBefore) / float64(n)

	// Commit progress events and time their arrival.
	commits := map[int64]time.Time{}
	var lastSeq int64
	for range opts.events {
		seq, err := commitProgress(ctx, pool, runID)
		if err != nil {
			return res, err
		}
		commits[seq] = time.Now()
		lastSeq = seq
		time.Sleep(opts.interval)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !allHaveSeq(clients, lastSeq) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cpuAfter, _ := cpuTime(srv.Process.Pid)
	res.serverCPU = cpuAfter - cpuBefore

	var lat []time.Duration
	for i, c := range clients {
		c.mu.Lock()
		for _, r := range rec.byClient[i] {
			if at, ok := commits[r.seq]; ok {
				lat = append(lat, r.at.Sub(at))
				res.received++
			}
		}
		if c.lastSeq == lastSeq {
			res.heldAtTheEnd++
		} else {
			res.missedFinal++
		}
		c.mu.Unlock()
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
		res.max = lat[len(lat)-1]
	}
	for _, c := range clients {
		c.close()
	}
	return res, nil
}

type received struct {
	seq int64
	at  time.Time
}

// receipts holds each client's receipts; client i appends only to its own
// slice, under its own lock.
type receipts struct {
	byClient [][]received
}

type client struct {
	conn *websocket.Conn
	done chan struct{}

	mu      sync.Mutex
	lastSeq int64
	got     bool
}

func (c *client) close() {
	_ = c.conn.CloseNow()
	<-c.done
}

func allHaveSnapshot(cs []*client) bool {
	for _, c := range cs {
		c.mu.Lock()
		got := c.got
		c.mu.Unlock()
		if !got {
			return false
		}
	}
	return true
}

func allHaveSeq(cs []*client, seq int64) bool {
	for _, c := range cs {
		c.mu.Lock()
		s := c.lastSeq
		c.mu.Unlock()
		if s < seq {
			return false
		}
	}
	return true
}

// subscribe opens one graphql-transport-ws connection and subscribes to the
// run; onEvent is called (under the client's lock) for each event.
func subscribe(ctx context.Context, base, token, runGID string, onEvent func(seq int64, at time.Time)) (*client, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dialCtx, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	write := func(v any) error {
		b, _ := json.Marshal(v)
		return conn.Write(dialCtx, websocket.MessageText, b)
	}
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}}); err != nil {
		conn.CloseNow()
		return nil, err
	}
	_, ack, err := conn.Read(dialCtx)
	if err != nil || !bytes.Contains(ack, []byte("connection_ack")) {
		conn.CloseNow()
		return nil, fmt.Errorf("no connection_ack: %s %v", ack, err)
	}
	if err := write(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($id: ID!) { importProgress(id: $id) { seq processed state } }`,
		"variables": map[string]any{"id": runGID},
	}}); err != nil {
		conn.CloseNow()
		return nil, err
	}
	c := &client{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		// The clients share the server's 2 cores, so each reads into one
		// buffer of its own and picks the type and seq out of the message
		// without a JSON decoder: what the load generator spends, the
		// server cannot.
		var buf bytes.Buffer
		for {
			_, r, err := conn.Reader(context.Background())
			if err != nil {
				return
			}
			buf.Reset()
			_, err = buf.ReadFrom(r)
			at := time.Now()
			if err != nil {
				return
			}
			msg := buf.Bytes()
			switch {
			case bytes.Contains(msg, []byte(`"type":"ping"`)):
				_ = conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			case bytes.Contains(msg, []byte(`"type":"next"`)):
				seq, ok := seqOf(msg)
				if !ok {
					continue
				}
				c.mu.Lock()
				c.got = true
				c.lastSeq = seq
				if onEvent != nil {
					onEvent(c.lastSeq, at)
				}
				c.mu.Unlock()
			}
		}
	}()
	return c, nil
}

// seqOf reads the number after "seq": in a progress event.
func seqOf(msg []byte) (int64, bool) {
	i := bytes.Index(msg, []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(`"seq":`):]
	end := bytes.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}

// startRun creates an integration and starts an import; with no worker on
// the node it stays QUEUED until the benchmark moves it.
func startRun(ctx context.Context, base, token string) (int64, string, error) {
	gql := func(query string, vars map[string]any, path ...string) (string, error) {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return "", err
		}
		v := any(out["data"])
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("unexpected answer: %v", out)
		}
		return s, nil
	}
	integ, err := gql(`mutation { createIntegration(input: {provider: TAVE, name: "Bench", credentials: {apiKey: "demo-100"}}) { integration { id } } }`,
		nil, "createIntegration", "integration", "id")
	if err != nil {
		return 0, "", err
	}
	gid, err := gql(`mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`, map[string]any{"id": integ},
		"startImport", "run", "id")
	if err != nil {
		return 0, "", err
	}
	raw, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil {
		return 0, "", err
	}
	_, num, _ := strings.Cut(string(raw), ":")
	id, err := strconv.ParseInt(num, 10, 64)
	return id, gid, err
}

// commitProgress commits one page's worth of progress the way the import
// worker does: counters and seq updated and pg_notify called in one
// transaction. It returns the new seq.
func commitProgress(ctx context.Context, pool *pgxpool.Pool, runID int64) (int64, error) {
	var seq int64
	err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE import_runs SET state = 'RUNNING', started_at = coalesce(started_at, now()),
			processed = processed + 100, created = created + 100, seq = seq + 1, updated_at = now() WHERE id = $1`, runID); err != nil {
			return err
		}
		q := db.New(tx)
		run, err := q.ImportRunGetByIDAnyOrg(ctx, runID)
		if err != nil {
			return err
		}
		seq = run.Seq
		return q.ImportRunNotify(ctx, run)
	})
	return seq, err
}

// serverStats reads the server's goroutine count and heap in use from
// /metrics.
func serverStats(ctx context.Context, base string) (goroutines, heap float64) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_goroutines":
			goroutines = v
		case "go_memstats_heap_inuse_bytes":
			heap = v
		}
	}
	return goroutines, heap
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("server did not become ready")
}

// rss is a process's resident set size in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("error reading RSS (Linux only): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTime is a process's user+system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100), nil
}

func raiseFDLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("error reading the fd limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("error raising the fd limit: %w", err)
	}
	if lim.Cur < 12000 {
		fmt.Fprintf(os.Stderr, "warning: fd limit %d is below what 10,000 subscribers need\n", lim.Cur)
	}
	return nil
}

func withDatabase(u, name string) (string, error) {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return "", fmt.Errorf("bad PostgreSQL URL: %w", err)
	}
	i := strings.LastIndex(u, "/"+cfg.Database)
	if i < 0 {
		return "", fmt.Errorf("cannot find the database name in %s", u)
	}
	return u[:i] + "/" + name + u[i+1+len(cfg.Database):], nil
}

func numCPU() int {
	b, err := os.ReadFile("/sys/fs/cgroup/cpu.max")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 && f[0] != "max" {
			q, _ := strconv.Atoi(f[0])
			p, _ := strconv.Atoi(f[1])
			if p > 0 {
				return max(1, q/p)
			}
		}
	}
	return int(numProcs())
}

func numProcs() int64 {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return int64(strings.Count(string(b), "processor\t:"))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
