package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/dbtest"
	"github.com/wedsync/crmhub/resolvers"
)

// serverProcess is crmhub serve running as a child process (the test binary
// re-executed as crmhub), so it can be killed with SIGKILL.
type serverProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *os.File
}

func startServerProcess(t *testing.T, env []string) *serverProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	logs, err := os.CreateTemp(t.TempDir(), "server-*.log")
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append([]string{"CRMHUB_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH"), "CRMHUB_ADDR=" + addr}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	p := &serverProcess{cmd: cmd, url: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("server %s log (tail):\n%s", addr, out)
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond, "server did not start; see %s", logs.Name())
	return p
}

func (p *serverProcess) kill() {
	if p.cmd.ProcessState == nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill() // SIGKILL: no shutdown, no cleanup.
		_ = p.cmd.Wait()
	}
}

// processBundle is what tests that run `crmhub serve` as child processes
// share: a database of their own with an organization and its OWNER token, a
// CRM simulator that outlives the servers, and the servers' environment.
type processBundle struct {
	pool   *pgxpool.Pool
	token  string
	simURL string
	// env is the servers' environment: the database, a key, quiet logs and
	// no client-side CRM rate limit; tests append their own.
	env []string
}

func setupProcesses(t *testing.T, slug string) *processBundle {
	t.Helper()
	ctx := context.Background()
	dbURL := dbtest.URL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	q := db.New(pool)
	org, err := q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: slug, Name: slug + " studio"})
	require.NoError(t, err)
	token, _, err := resolvers.CreateToken(ctx, q, &org.ID, "owner", "OWNER")
	require.NoError(t, err)
	sim := httptest.NewServer(crmsim.New(crmsim.Config{}))
	t.Cleanup(sim.Close)
	return &processBundle{
		pool: pool, token: token, simURL: sim.URL,
		env: []string{"DATABASE_URL=" + dbURL, "CRMHUB_SECRET_KEY=" + testSecretKey(), "CRMHUB_LOG_LEVEL=warn",
			"CRMHUB_CRM_REQUESTS_PER_MINUTE=-1"},
	}
}

// startTaveImport creates a Tave integration on the simulator's tenant
// credential through the server at url and starts a FULL import; it returns
// the run's row id.
func (p *processBundle) startTaveImport(t *testing.T, url, credential string) int64 {
	t.Helper()
	b := &testBundle{url: url}
	integ := dig(b.mustGQL(t, p.token, `mutation($url: String!, $key: String!) { createIntegration(input: {provider: TAVE, name: "Tave", baseUrl: $url, credentials: {apiKey: $key}}) { integration { id } } }`,
		map[string]any{"url": p.simURL + "/tave/api/v2", "key": credential}), "createIntegration", "integration", "id").(string)
	runGID := dig(b.mustGQL(t, p.token, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`, map[string]any{"id": integ}),
		"startImport", "run", "id").(string)
	_, runID, err := parseGID(runGID)
	require.NoError(t, err)
	return runID
}

// TestImportSurvivesKill9 kills the server with SIGKILL three times in the
// middle of a 20,000-client import and restarts it each time: River rescues
// the job, the worker resumes after the last committed page, and the run
// ends with exactly 20,000 clients while seq never goes backwards.
func TestImportSurvivesKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupProcesses(t, "crash")
	pool := p.pool
	env := append(p.env, "CRMHUB_IMPORT_SLICE=1s", "CRMHUB_RESCUE_STUCK_JOBS_AFTER=4s")
	srv := startServerProcess(t, env)
	runID := p.startTaveImport(t, srv.url, "demo-20000")

	// Watch seq straight from the database, across every restart.
	var backwards atomic.Value
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		last := int64(-1)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var seq int64
			if err := pool.QueryRow(ctx, "SELECT seq FROM import_runs WHERE id = $1", runID).Scan(&seq); err != nil {
				continue
			}
			if seq < last {
				backwards.Store(fmt.Sprintf("seq went from %d to %d", last, seq))
			}
			last = seq
		}
	}()

	processed := func() (int64, string) {
		var n int64
		var state string
		require.NoError(t, pool.QueryRow(ctx, "SELECT processed, state FROM import_runs WHERE id = $1", runID).Scan(&n, &state))
		return n, state
	}
	var lastKill int64
	for kill := 1; kill <= 3; kill++ {
		// Let it commit some pages past the last kill, then kill it
		// mid-import.
		require.Eventually(t, func() bool { n, _ := processed(); return n >= lastKill+1500 }, 3*time.Minute, 20*time.Millisecond, "stalled: %s", describeRun(ctx, pool, runID))
		lastKill, _ = processed()
		require.Less(t, lastKill, int64(20000), "the import must still be running when killed")
		srv.kill()
		t.Logf("kill %d at %d processed", kill, lastKill)
		srv = startServerProcess(t, env)
	}
	require.Eventually(t, func() bool { _, s := processed(); return s == db.RunSucceeded }, 4*time.Minute, 100*time.Millisecond,
		"run did not succeed: %s", describeRun(ctx, pool, runID))
	close(stop)
	<-watched
	require.Nil(t, backwards.Load())

	var total, distinct int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT external_id) FROM clients WHERE deleted_at IS NULL").Scan(&total, &distinct))
	require.Equal(t, 20000, total)
	require.Equal(t, 20000, distinct)
	var created, attempt int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT created, attempt FROM import_runs WHERE id = $1", runID).Scan(&created, &attempt))
	require.Equal(t, int64(20000), created, "a replayed page is not counted twice")
	require.GreaterOrEqual(t, attempt, int64(2), "River rescued the job")
}

func describeRun(ctx context.Context, pool *pgxpool.Pool, runID int64) string {
	var out string
	_ = pool.QueryRow(ctx, `SELECT r.state || ' processed=' || r.processed || ' attempt=' || r.attempt ||
		' job=' || coalesce(j.state::text, '?') || ' job_attempt=' || coalesce(j.attempt, 0) ||
		' scheduled=' || coalesce(j.scheduled_at::text, '') || ' errors=' || coalesce(j.errors::text, '')
		FROM import_runs r LEFT JOIN river_job j ON j.id = r.river_job_id WHERE r.id = $1`, runID).Scan(&out)
	rows, err := pool.Query(ctx, `SELECT state || ' ' || coalesce(wait_event_type, '') || ':' || coalesce(wait_event, '') || ' ' || left(query, 120)
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err == nil {
		for rows.Next() {
			var line string
			_ = rows.Scan(&line)
			out += "\n  " + line
		}
		rows.Close()
	}
	return out
}

// TestGracefulShutdownMidImport stops the server with SIGTERM during an
// import: it exits promptly and cleanly, the run goes back to the queue at a
// page boundary, and the next server finishes it without waiting for a
// stuck-job rescue.
func TestGracefulShutdownMidImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupProcesses(t, "graceful")
	pool := p.pool
	// A long slice and rescue: only a clean hand-back lets the run go on
	// quickly.
	env := append(p.env, "CRMHUB_IMPORT_SLICE=30s")
	srv := startServerProcess(t, env)
	runID := p.startTaveImport(t, srv.url, "demo-8000")
	processed := func() int64 {
		var n int64
		require.NoError(t, pool.QueryRow(ctx, "SELECT processed FROM import_runs WHERE id = $1", runID).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return processed() >= 500 }, time.Minute, 10*time.Millisecond)

	stopped := time.Now()
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, srv.cmd.Wait(), "a clean exit")
	require.Less(t, time.Since(stopped), 10*time.Second)
	atStop := processed()
	require.Less(t, atStop, int64(8000), "stopped mid-import")
	var jobState string
	require.NoError(t, pool.QueryRow(ctx, "SELECT j.state::text FROM river_job j JOIN import_runs r ON r.river_job_id = j.id WHERE r.id = $1", runID).Scan(&jobState))
	require.Contains(t, []string{"available", "scheduled"}, jobState, "the run went back to the queue")

	restarted := time.Now()
	srv = startServerProcess(t, env)
	require.Eventually(t, func() bool {
		var s string
		_ = pool.QueryRow(ctx, "SELECT state FROM import_runs WHERE id = $1", runID).Scan(&s)
		return s == db.RunSucceeded
	}, time.Minute, 50*time.Millisecond, "run did not finish: %s", describeRun(ctx, pool, runID))
	t.Logf("stopped at %d processed; finished %s after the restart", atStop, time.Since(restarted))
	var total int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM clients WHERE deleted_at IS NULL").Scan(&total))
	require.Equal(t, 8000, total)
}
