// Command readpath measures crmhub's read path over loopback: one
// organization with 1,000,000 clients, 64 concurrent connections, the first
// page of clients(first: 50), a page at depth 900,000 and text searches,
// with the read cache on and off, against { __typename } on the same
// server, and the uncached first page once more paced at -rate requests per
// second (open loop) for the latency of a request on a server that is not
// saturated. It builds crmhub, loads the data with one SQL statement and
// runs `crmhub serve` twice (CRMHUB_CACHE=on, then off).
//
//	go run ./bench/readpath                  # 1,000,000 clients, 5 s per case
//	go run ./bench/readpath -n 100000 -d 2s  # quick run
//	go run ./bench/readpath -reuse -gogc 400 # the server with GOGC=400
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/bootstrap"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const pageQuery = `query($after: String) { organization { clients(first: 50, after: $after) {
  edges { cursor node { id displayName email eventDate venue stage } } pageInfo { endCursor hasNextPage } } } }`

const searchQuery = `query($q: String!) { organization { clients(first: 50, filter: {search: $q}) {
  edges { cursor node { id displayName email eventDate venue stage } } pageInfo { endCursor hasNextPage } } } }`

type benchCase struct {
	name  string
	body  []byte
	cache bool
}

type result struct {
	benchCase
	requests int
	errors   int64
	rps      float64
	p50, p99 time.Duration
	// cpu is the CPU time the server and PostgreSQL spent per request
	// while the case was measured.
	cpu cpuTimes
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("readpath", flag.ContinueOnError)
	n := fs.Int("n", 1_000_000, "clients in the organization")
	conc := fs.Int("c", 64, "concurrent connections")
	dur := fs.Duration("d", 5*time.Second, "measuring time per case (after 1 s of warm-up)")
	reuse := fs.Bool("reuse", false, "reuse the bench database when it already holds n clients")
	rate := fs.Float64("rate", 200, "requests per second of the paced (open-loop) uncached first-page case")
	gogc := fs.String("gogc", "", "GOGC of the crmhub server only (empty: Go's default); the load generator keeps its own")
	sqlConns := fs.Int("sqlconns", 40, "pool size of the SQL-alone case (40 is crmhub's CRMHUB_DB_MAX_CONNS default)")
	only := fs.String("only", "", "run only the cases whose name contains this")
	cacheModes := fs.String("cache", "both", "on, off or both: the server's read cache in the cases run")
	serve := fs.Bool("serve", false, "start one server (the first -cache mode), print its address, a token and the deep cursor, and keep it up until interrupted: for wrk or a profiler")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, err := bootstrap.URL(ctx, log, bootstrap.Config{
		DatabaseURL: os.Getenv("DATABASE_URL"), DataDir: filepath.Join(".data", "postgres"),
		Stdout: os.Stderr, Stderr: os.Stderr,
	})
	if err != nil {
		return fmt.Errorf("error finding PostgreSQL: %w", err)
	}
	dbURL, err := prepareDatabase(ctx, base, *n, *reuse)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("error opening pool: %w", err)
	}
	defer pool.Close()
	token, deepCursor, err := prepareOrg(ctx, pool, *n)
	if err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "crmhub-readpath-")
	if err != nil {
		return fmt.Errorf("error making a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "crmhub")
	fmt.Fprintln(os.Stderr, "building crmhub…")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("error building crmhub: %w: %s", err, out)
	}

	body := func(q string, vars map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
		return b
	}
	modes := map[string][]bool{"both": {true, false}, "on": {true}, "off": {false}}[*cacheModes]
	if modes == nil {
		return fmt.Errorf("-cache %q: want on, off or both", *cacheModes)
	}
	if *serve {
		srv, err := startServer(ctx, bin, dbURL, modes[0], *gogc)
		if err != nil {
			return err
		}
		defer srv.stop()
		fmt.Printf("%s\nAuthorization: Bearer %s\ndeep cursor: %s\n", srv.url, token, deepCursor)
		sig, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer cancel()
		<-sig.Done()
		return nil
	}
	var results []result
	if strings.Contains(sqlCaseName(*sqlConns), *only) {
		fmt.Fprintln(os.Stderr, "measuring the first page's SQL alone…")
		r, err := measureSQL(ctx, dbURL, *sqlConns, *conc, *dur)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	for _, cache := range modes {
		srv, err := startServer(ctx, bin, dbURL, cache, *gogc)
		if err != nil {
			return err
		}
		cases := []benchCase{
			{name: "{ __typename }", body: body(`{ __typename }`, nil)},
			{name: "clients(first: 50) first page", body: body(pageQuery, nil)},
			{name: "clients(first: 50) at depth 900,000", body: body(pageQuery, map[string]any{"after": deepCursor})},
			{name: `search "nguyen" (1 in 8 match)`, body: body(searchQuery, map[string]any{"q": "nguyen"})},
			{name: `search "guest77777" (11 match)`, body: body(searchQuery, map[string]any{"q": "guest77777"})},
		}
		for _, c := range cases {
			if !strings.Contains(c.name, *only) {
				continue
			}
			c.cache = cache
			fmt.Fprintf(os.Stderr, "measuring %s (cache %v)…\n", c.name, cache)
			r, err := measure(ctx, srv, token, c, *conc, *dur)
			if err != nil {
				srv.stop()
				return err
			}
			results = append(results, r)
		}
		if c := cases[1]; !cache && strings.Contains(c.name, *only) {
			fmt.Fprintf(os.Stderr, "measuring %s at %.0f req/s, open loop (cache off)…\n", c.name, *rate)
			r, err := measurePaced(ctx, srv, token, c, *conc, *rate, *dur)
			if err != nil {
				srv.stop()
				return err
			}
			r.name = fmt.Sprintf("%s, paced at %.0f req/s", c.name, *rate)
			results = append(results, r)
		}
		srv.stop()
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\tcache\treq/s\tp50\tp99\terrors\tcrmhub CPU/req\tPostgreSQL CPU/req\t\n")
	for _, r := range results {
		cache := "off"
		if r.cache {
			cache = "on"
		}
		server := ms(r.cpu.server)
		if r.cpu.server == 0 {
			server = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%d\t%s\t%s\t\n", r.name, cache, r.rps, ms(r.p50), ms(r.p99), r.errors, server, ms(r.cpu.postgres))
	}
	_ = tw.Flush()
	find := func(name string, cache bool) result {
		for _, r := range results {
			if r.name == name && r.cache == cache {
				return r
			}
		}
		return result{}
	}
	if *only != "" || len(modes) != 2 {
		return nil // the ratios below need every case
	}
	typename := find("{ __typename }", true)
	for _, cache := range []bool{true, false} {
		first, deep := find("clients(first: 50) first page", cache), find("clients(first: 50) at depth 900,000", cache)
		fmt.Printf("cache %-3v: depth-900,000 p99 / first-page p99 = %.2f (target ≤ 1.5)\n", onOff(cache), float64(deep.p99)/float64(first.p99))
	}
	fmt.Printf("cached first page req/s / { __typename } req/s = %.2f (target ≥ 0.7)\n", find("clients(first: 50) first page", true).rps/typename.rps)
	fmt.Printf("uncached first page p99 = %s (target ≤ 20 ms) with %d connections in a closed loop; { __typename } p99 there: %s\n",
		ms(find("clients(first: 50) first page", false).p99), *conc, ms(find("{ __typename }", false).p99))
	sql := find(sqlCaseName(*sqlConns), false)
	fmt.Printf("the first page's SQL alone (no HTTP, no GraphQL) from %d goroutines: %.0f req/s, p99 %s\n", *conc, sql.rps, ms(sql.p99))
	fmt.Printf("uncached first page p99 = %s paced at %.0f req/s (open loop, %d connections)\n",
		ms(find(fmt.Sprintf("clients(first: 50) first page, paced at %.0f req/s", *rate), false).p99), *rate, *conc)
	fmt.Printf("(%d clients, %d connections, %s per case, server GOGC %s, GOMAXPROCS of this machine: %d CPUs)\n",
		*n, *conc, *dur, cmp.Or(*gogc, "default"), runtime.NumCPU())
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// prepareDatabase creates (or reuses) the database crmhub_bench_readpath, migrated.
func prepareDatabase(ctx context.Context, base string, n int, reuse bool) (string, error) {
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		return "", fmt.Errorf("error connecting: %w", err)
	}
	defer admin.Close()
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'crmhub_bench_readpath')").Scan(&exists); err != nil {
		return "", fmt.Errorf("error checking for the bench database: %w", err)
	}
	dbURL, err := replaceDatabase(base, "crmhub_bench_readpath")
	if err != nil {
		return "", err
	}
	if !exists || !reuse {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS crmhub_bench_readpath WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("error dropping the bench database: %w", err)
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE crmhub_bench_readpath"); err != nil {
			return "", fmt.Errorf("error creating the bench database: %w", err)
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("error connecting to the bench database: %w", err)
	}
	defer pool.Close()
	// A reused database gets any migration added since it was made.
	if err := db.Migrate(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return "", err
	}
	return dbURL, nil
}

// replaceDatabase points a PostgreSQL URL at another database.
func replaceDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("error parsing the database URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// prepareOrg makes the organization, its n clients and an OWNER token, and
// returns the token and the cursor of the 900,000th client in the default
// order.
func prepareOrg(ctx context.Context, pool *pgxpool.Pool, n int) (string, string, error) {
	q := db.New(pool)
	org, err := q.OrganizationGetBySlug(ctx, "bench")
	if errors.Is(err, db.ErrNotFound) {
		if org, err = q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: "bench", Name: "Bench Studio"}); err != nil {
			return "", "", err
		}
	} else if err != nil {
		return "", "", err
	}
	var have int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM clients WHERE org_id = $1", org.ID).Scan(&have); err != nil {
		return "", "", fmt.Errorf("error counting clients: %w", err)
	}
	if have != n {
		if _, err := pool.Exec(ctx, "DELETE FROM clients WHERE org_id = $1", org.ID); err != nil {
			return "", "", fmt.Errorf("error clearing clients: %w", err)
		}
		var integ int64
		if err := pool.QueryRow(ctx, "INSERT INTO integrations (org_id, provider, name) VALUES ($1, 'CSV', 'Bench') RETURNING id", org.ID).Scan(&integ); err != nil {
			return "", "", fmt.Errorf("error creating integration: %w", err)
		}
		fmt.Fprintf(os.Stderr, "loading %d clients…\n", n)
		start := time.Now()
		if _, err := pool.Exec(ctx, `
			INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, partner_first_name,
				partner_last_name, email, email_normalized, phone, event_date, venue, stage, created_at, updated_at)
			SELECT $1, $2, 'b' || g,
				(ARRAY['Emma','Olivia','Ava','Mia','Noah','Liam','Sofia','Chloe','Grace','Isla','Amelia','Ethan','Lucas','Mateo','Hana'])[1 + g % 15],
				(ARRAY['Smith','Clarke','Brown','Nguyen','Okafor','Garcia','Rossi','Kowalski','Murphy','Silva','Patel','Kim','Novak','Dubois','Jensen','Haddad'])[1 + (g / 3) % 16],
				(ARRAY['James','Lucas','Sofia','Chloe','Aisha','Mason','Zoe'])[1 + g % 7],
				(ARRAY['Hart','Bell','Moreau','Costa','Ivanova','Walsh','Sato','Fischer','Reyes'])[1 + g % 9],
				'guest' || g || '@example.com', 'guest' || g || '@example.com', '+4420' || lpad((g % 100000000)::text, 8, '0'),
				CASE WHEN g % 11 = 0 THEN NULL ELSE date '2026-04-01' + (g % 210) END,
				(ARRAY['The Old Barn','Lakeside Hall','St Mary''s Church','Rosewood Manor','Harbour View Hotel','Cliffside Gardens'])[1 + g % 6],
				(ARRAY['LEAD','BOOKED','FULFILLED','COMPLETED','LOST'])[1 + g % 5],
				timestamptz '2025-01-01' + g * interval '10 seconds', now()
			FROM generate_series(1, $3::int) g`, org.ID, integ, n); err != nil {
			return "", "", fmt.Errorf("error loading clients: %w", err)
		}
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE clients"); err != nil {
			return "", "", fmt.Errorf("error analysing clients: %w", err)
		}
		fmt.Fprintf(os.Stderr, "loaded in %s\n", time.Since(start).Round(time.Second))
	}
	token, hash := auth.NewToken()
	if _, err := q.APITokenCreate(ctx, &db.APITokenCreateParams{OrgID: &org.ID, Name: "bench", Role: string(auth.RoleOwner), Hash: hash, Prefix: token[:len(auth.TokenPrefix)+4]}); err != nil {
		return "", "", err
	}
	depth := min(900_000, n-50)
	var id int64
	if err := pool.QueryRow(ctx, "SELECT id FROM clients WHERE org_id = $1 AND deleted_at IS NULL ORDER BY id OFFSET $2 LIMIT 1", org.ID, depth-1).Scan(&id); err != nil {
		return "", "", fmt.Errorf("error finding the client at depth %d: %w", depth, err)
	}
	// The default order's cursor (resolvers/clients.go): "k|ID:A|<id>|".
	cursor := base64.RawURLEncoding.EncodeToString([]byte("k|ID:A|" + strconv.FormatInt(id, 10) + "|"))
	return token, cursor, nil
}

// server is a running `crmhub serve`.
type server struct {
	url  string // of /graphql
	pid  int
	stop func()
}

// startServer runs `crmhub serve` on a free loopback port and waits until
// it answers.
func startServer(ctx context.Context, bin, dbURL string, cache bool, gogc string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("error finding a port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "CRMHUB_ADDR="+addr,
		"CRMHUB_SECRET_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)),
		"CRMHUB_LOG_LEVEL=warn", "CRMHUB_CACHE="+onOff(cache), "CRMHUB_MAX_WORKERS=1",
		// A load generator is one client: the per-token limit would measure
		// itself.
		"CRMHUB_RATE_LIMIT_PER_MINUTE=0")
	if gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+gogc)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("error starting crmhub: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// Let the LISTEN connection come up before measuring.
				time.Sleep(500 * time.Millisecond)
				return &server{url: "http://" + addr + "/graphql", pid: cmd.Process.Pid, stop: stop}, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("crmhub did not become ready in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// measure runs c from conc connections for warm-up plus d and returns the
// throughput and latency percentiles of the measured part.
func measure(ctx context.Context, srv *server, token string, c benchCase, conc int, d time.Duration) (result, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	defer client.CloseIdleConnections()
	// Check once that the case works.
	if err := do(ctx, client, srv.url, token, c.body, &bytes.Buffer{}); err != nil {
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	return closedLoop(c, conc, d, meter{server: srv.pid}, func(buf *bytes.Buffer) error {
		return do(ctx, client, srv.url, token, c.body, buf)
	}), nil
}

// closedLoop runs one from conc workers, each sending its next request when
// the last is answered, for a second of warm-up plus d.
func closedLoop(c benchCase, conc int, d time.Duration, m meter, one func(buf *bytes.Buffer) error) result {
	warmEnd := time.Now().Add(time.Second)
	end := warmEnd.Add(d)
	return workers(c, conc, warmEnd, d, m, func(buf *bytes.Buffer, record func(time.Time, error)) {
		for start := time.Now(); start.Before(end); start = time.Now() {
			err := one(buf)
			if start.After(warmEnd) {
				record(start, err)
			}
		}
	})
}

// workers runs work on conc goroutines, each with its own buffer and its
// own latencies (record times a request from start), and meters the CPU
// from from to from+d.
func workers(c benchCase, conc int, from time.Time, d time.Duration, m meter,
	work func(buf *bytes.Buffer, record func(start time.Time, err error))) result {
	cpu := make(chan cpuTimes, 1)
	go func() {
		time.Sleep(time.Until(from))
		before := m.read()
		time.Sleep(time.Until(from.Add(d)))
		cpu <- m.read().minus(before)
	}()
	var errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			var buf bytes.Buffer
			work(&buf, func(start time.Time, err error) {
				if err != nil {
					errs.Add(1)
				}
				lat[w] = append(lat[w], time.Since(start))
			})
		})
	}
	wg.Wait()
	r := summarize(c, lat, errs.Load(), d)
	if r.requests > 0 {
		used := <-cpu
		r.cpu = cpuTimes{server: used.server / time.Duration(r.requests), postgres: used.postgres / time.Duration(r.requests)}
	}
	return r
}

func sqlCaseName(conns int) string {
	return fmt.Sprintf("first page's SQL alone (pgx, %d connections)", conns)
}

// measureSQL runs the first page's SQL (db.Queries.ClientList, what an
// uncached first page asks PostgreSQL) from conc goroutines over a pool of
// conns connections, with no HTTP and no GraphQL: the floor under the
// uncached page on this machine.
func measureSQL(ctx context.Context, dbURL string, conns, conc int, d time.Duration) (result, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return result{}, err
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	q := db.New(pool)
	org, err := q.OrganizationGetBySlug(ctx, "bench")
	if err != nil {
		return result{}, err
	}
	// The order and size of clients(first: 50) without orderBy.
	p := &db.ClientListParams{OrgID: org.ID, Order: db.ClientOrderID, Limit: 50}
	one := func(*bytes.Buffer) error {
		rows, _, err := q.ClientList(ctx, p)
		if err == nil && len(rows) != 50 {
			err = fmt.Errorf("%d rows", len(rows))
		}
		return err
	}
	if err := one(nil); err != nil {
		return result{}, fmt.Errorf("the first page's SQL: %w", err)
	}
	return closedLoop(benchCase{name: sqlCaseName(conns)}, conc, d, meter{}, one), nil
}

// measurePaced sends c at a fixed rate over conc connections (open loop:
// requests leave on schedule whether or not earlier ones have answered) and
// times each from when it was due, so a stall is counted against every
// request it delayed. It shows the latency of one request when the server
// is not saturated, which the closed loop above cannot.
func measurePaced(ctx context.Context, srv *server, token string, c benchCase, conc int, rate float64, d time.Duration) (result, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	defer client.CloseIdleConnections()
	if err := do(ctx, client, srv.url, token, c.body, &bytes.Buffer{}); err != nil {
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	due := make(chan time.Time, n)
	start := time.Now().Add(100 * time.Millisecond)
	for i := range n {
		due <- start.Add(time.Duration(i) * interval)
	}
	close(due)
	return workers(c, conc, start, d, meter{server: srv.pid}, func(buf *bytes.Buffer, record func(time.Time, error)) {
		for at := range due {
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			}
			record(at, do(ctx, client, srv.url, token, c.body, buf))
		}
	}), nil
}

// cpuTimes is CPU time used by the server and by PostgreSQL.
type cpuTimes struct{ server, postgres time.Duration }

func (t cpuTimes) minus(u cpuTimes) cpuTimes {
	return cpuTimes{server: t.server - u.server, postgres: t.postgres - u.postgres}
}

// meter reads, from /proc (Linux), the CPU time of the crmhub server (pid
// server, none when 0) and of every process named postgres on this
// machine (the server's backends and PostgreSQL's own). Elsewhere it
// reads zeros.
type meter struct{ server int }

func (m meter) read() cpuTimes {
	var t cpuTimes
	if m.server != 0 {
		t.server, _ = procCPU(m.server)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if used, comm := procCPU(pid); comm == "postgres" {
			t.postgres += used
		}
	}
	return t
}

// procCPU is a process's user and system time and its command name, from
// /proc/<pid>/stat (utime and stime are fields 14 and 15, in clock ticks of
// 1/100 s, Linux's USER_HZ).
func procCPU(pid int) (time.Duration, string) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ""
	}
	open, closing := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || closing < open {
		return 0, ""
	}
	fields := strings.Fields(string(raw[closing+1:])) // from field 3, the state
	if len(fields) < 13 {
		return 0, ""
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, string(raw[open+1 : closing])
}

// summarize merges the workers' latencies into the case's result.
func summarize(c benchCase, lat [][]time.Duration, errs int64, d time.Duration) result {
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := result{benchCase: c, requests: len(all), errors: errs, rps: float64(len(all)) / d.Seconds()}
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[len(all)*99/100]
	}
	return r
}

// do sends one request and checks its answer, reading it into buf: the
// load generator shares the cores with the server, so each worker reuses
// one buffer instead of growing a new one per answer.
func do(ctx context.Context, client *http.Client, target, token string, body []byte, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	raw := buf.Bytes()
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
		return fmt.Errorf("status %d: %.300s", resp.StatusCode, raw)
	}
	return nil
}
