// Command imports measures crmhub's import pipeline end to end and compares
// it, on the same machine in the same run, with the two ways of writing the
// same rows that bound it:
//
//   - a raw COPY of the normalised rows into an empty clients table (the
//     ceiling: no HTTP, no parsing, no upsert);
//   - a row-by-row INSERT of the same rows, one statement and one commit per
//     row (the naive approach);
//   - crmhub's write path alone: the same rows committed 100 to a page the
//     way the worker commits them (COPY to staging, upsert, counters);
//   - crmhub: startImport → SUCCEEDED against the CRM simulator, with the
//     server and the simulator as separate processes.
//
// It also times 500 clients from mutation to SUCCEEDED, and compares the
// server's peak RSS (VmHWM) importing 1,000,000 clients with importing
// 100,000.
//
//	go run ./bench/imports             # 100,000 and 1,000,000 (about 10 minutes)
//	go run ./bench/imports -big 0      # skip the 1,000,000 run
package main

import (
	"bufio"
	"bytes"
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
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/tave"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/bootstrap"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type env struct {
	bin     string
	dbURL   string
	pool    *pgxpool.Pool
	simURL  string
	token   string
	orgID   int64
	workDir string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("imports", flag.ContinueOnError)
	n := fs.Int("n", 100_000, "clients in the main comparison")
	big := fs.Int("big", 1_000_000, "clients in the memory comparison (0 skips it)")
	naiveN := fs.Int("naive", 20_000, "rows the row-by-row baseline inserts (its rate is extrapolated to n)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "crmhub-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	e := &env{workDir: work, bin: filepath.Join(work, "crmhub")}
	fmt.Fprintln(os.Stderr, "building crmhub…")
	if out, err := exec.Command("go", "build", "-o", e.bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, err := bootstrap.URL(ctx, log, bootstrap.Config{DatabaseURL: os.Getenv("DATABASE_URL"), DataDir: ".data/postgres", Stdout: os.Stderr, Stderr: os.Stderr})
	if err != nil {
		return err
	}
	dbName := fmt.Sprintf("crmhub_bench_%d", time.Now().Unix())
	admin, err := pgx.Connect(ctx, withDB(base, "postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)") //nolint:errcheck
	e.dbURL = withDB(base, dbName)
	if e.pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		return err
	}
	defer e.pool.Close()
	if err := db.Migrate(ctx, e.pool, log); err != nil {
		return err
	}
	q := db.New(e.pool)
	org, err := q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: "bench", Name: "Bench Studio"})
	if err != nil {
		return err
	}
	e.orgID = org.ID
	tok, hash := auth.NewToken()
	if _, err := q.APITokenCreate(ctx, &db.APITokenCreateParams{OrgID: &org.ID, Name: "bench", Role: "OWNER", Hash: hash, Prefix: tok[:9]}); err != nil {
		return err
	}
	e.token = tok

	simAddr, err := freeAddr()
	if err != nil {
		return err
	}
	sim, err := startProcess(ctx, e.bin, nil, "sim", "--addr", simAddr)
	if err != nil {
		return err
	}
	defer sim.stop()
	e.simURL = "http://" + simAddr
	if err := waitHTTP(e.simURL+"/tave/api/v2/job?pageSize=10", map[string]string{"X-API-KEY": "demo-1"}); err != nil {
		return err
	}

	// The same normalised rows for the two baselines, read once.
	fmt.Fprintf(os.Stderr, "reading %d normalised clients from the simulator…\n", *n)
	rows, err := readClients(ctx, e.simURL, *n)
	if err != nil {
		return err
	}
	integID, err := e.integration(ctx, "baseline")
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "raw COPY…")
	copyDur, err := e.copyRows(ctx, integID, rows)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "row-by-row INSERT…")
	naiveRows := rows[:min(*naiveN, len(rows))]
	naiveDur, err := e.insertRows(ctx, integID, naiveRows)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "crmhub write path…")
	writeDur, err := e.writePath(ctx, integID, rows)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "crmhub pipeline…")
	small, err := e.pipeline(ctx, 500)
	if err != nil {
		return err
	}
	main, err := e.pipeline(ctx, *n)
	if err != nil {
		return err
	}
	var bigRes *pipelineResult
	if *big > 0 {
		fmt.Fprintf(os.Stderr, "crmhub pipeline, %d clients…\n", *big)
		if bigRes, err = e.pipeline(ctx, *big); err != nil {
			return err
		}
	}

	rate := func(rows int, d time.Duration) float64 { return float64(rows) / d.Seconds() }
	copyRate := rate(len(rows), copyDur)
	naiveRate := rate(len(naiveRows), naiveDur)
	pipeRate := rate(*n, main.elapsed)
	writeRate := rate(len(rows), writeDur)

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "method\trows\tseconds\trows/s\tvs COPY\tvs row-by-row\t\n")
	fmt.Fprintf(w, "raw COPY (ceiling)\t%d\t%.2f\t%.0f\t1.00×\t%.1f×\t\n", len(rows), copyDur.Seconds(), copyRate, copyRate/naiveRate)
	fmt.Fprintf(w, "row-by-row INSERT\t%d\t%.2f\t%.0f\t%.3f×\t1.0×\t\n", len(naiveRows), naiveDur.Seconds(), naiveRate, naiveRate/copyRate)
	fmt.Fprintf(w, "crmhub write path (pages of 100)\t%d\t%.2f\t%.0f\t%.2f×\t%.1f×\t\n", len(rows), writeDur.Seconds(), writeRate, writeRate/copyRate, writeRate/naiveRate)
	fmt.Fprintf(w, "crmhub (mutation → SUCCEEDED)\t%d\t%.2f\t%.0f\t%.2f×\t%.1f×\t\n", *n, main.elapsed.Seconds(), pipeRate, pipeRate/copyRate, pipeRate/naiveRate)
	w.Flush()
	fmt.Println()
	fmt.Printf("500 clients, mutation → SUCCEEDED: %d ms (target < 1000 ms)\n", small.elapsed.Milliseconds())
	fmt.Printf("server peak RSS importing %d: %.1f MiB\n", *n, float64(main.peakRSS)/(1<<20))
	if bigRes != nil {
		fmt.Printf("server peak RSS importing %d: %.1f MiB (%.2f× of %d; target ≤ 1.20×), %.0f rows/s\n",
			*big, float64(bigRes.peakRSS)/(1<<20), float64(bigRes.peakRSS)/float64(main.peakRSS), *n, rate(*big, bigRes.elapsed))
	}
	fmt.Printf("targets: crmhub ≥ 0.40× COPY (%.2f×), ≥ 20× row-by-row (%.1f×)\n", pipeRate/copyRate, pipeRate/naiveRate)
	return nil
}

// integration creates a Tave integration row for the baselines (no import).
func (e *env) integration(ctx context.Context, name string) (int64, error) {
	i, err := db.New(e.pool).IntegrationCreate(ctx, &db.IntegrationCreateParams{OrgID: e.orgID, Provider: "TAVE", Name: name})
	if err != nil {
		return 0, err
	}
	return i.ID, nil
}

func readClients(ctx context.Context, simURL string, n int) ([]crm.Client, error) {
	conn, err := tave.New(tave.Config{BaseURL: simURL + "/tave/api/v2", APIKey: fmt.Sprintf("demo-%d", n), RequestsPerMinute: -1})
	if err != nil {
		return nil, err
	}
	out := make([]crm.Client, 0, n)
	err = conn.Stream(ctx, crm.StreamRequest{Mode: crm.ModeFull}, func(_ context.Context, p crm.Page) error {
		out = append(out, p.Clients...)
		return nil
	})
	return out, err
}

var columns = []string{
	"org_id", "integration_id", "external_id", "first_name", "last_name", "maiden_name", "partner_first_name",
	"partner_last_name", "email", "email_normalized", "phone", "event_date", "venue", "job_type", "stage",
	"lead_source", "booking_value_minor", "currency", "guest_count", "source_created_at", "source_updated_at", "raw",
}

func values(orgID, integID int64, c *crm.Client) []any {
	var stage *string
	if c.Stage != "" {
		s := string(c.Stage)
		stage = &s
	}
	return []any{orgID, integID, c.ExternalID, c.FirstName, c.LastName, c.MaidenName, c.PartnerFirstName,
		c.PartnerLastName, c.Email, c.EmailNormalized, c.Phone, c.EventDate, c.Venue, c.JobType, stage,
		c.LeadSource, c.BookingValueMinor, c.Currency, c.GuestCount, c.SourceCreatedAt, c.SourceUpdatedAt, []byte(c.Raw)}
}

func (e *env) emptyClients(ctx context.Context) error {
	_, err := e.pool.Exec(ctx, "TRUNCATE clients")
	return err
}

func (e *env) copyRows(ctx context.Context, integID int64, rows []crm.Client) (time.Duration, error) {
	if err := e.emptyClients(ctx); err != nil {
		return 0, err
	}
	i := 0
	start := time.Now()
	_, err := e.pool.CopyFrom(ctx, pgx.Identifier{"clients"}, columns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		i++
		return values(e.orgID, integID, &rows[i-1]), nil
	}))
	return time.Since(start), err
}

func (e *env) insertRows(ctx context.Context, integID int64, rows []crm.Client) (time.Duration, error) {
	if err := e.emptyClients(ctx); err != nil {
		return 0, err
	}
	placeholders := make([]string, len(columns))
	for i := range columns {
		placeholders[i] = "$" + strconv.Itoa(i+1)
	}
	sql := "INSERT INTO clients (" + strings.Join(columns, ", ") + ") VALUES (" + strings.Join(placeholders, ", ") + ")"
	start := time.Now()
	for i := range rows {
		if _, err := e.pool.Exec(ctx, sql, values(e.orgID, integID, &rows[i])...); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	return d, e.emptyClients(ctx)
}

// writePath commits the rows the way the import worker does, 100 to a
// page, each page one transaction (COPY to staging, upsert, counters,
// notify), without the CRM: the database side of the pipeline alone.
func (e *env) writePath(ctx context.Context, integID int64, rows []crm.Client) (time.Duration, error) {
	if err := e.emptyClients(ctx); err != nil {
		return 0, err
	}
	var runID int64
	if err := e.pool.QueryRow(ctx, `INSERT INTO import_runs (org_id, integration_id, mode, state)
		VALUES ($1, $2, 'FULL', 'RUNNING') RETURNING id`, e.orgID, integID).Scan(&runID); err != nil {
		return 0, err
	}
	q := db.New(e.pool)
	start := time.Now()
	for i := 0; i < len(rows); i += 100 {
		page := &crm.Page{Clients: rows[i:min(i+100, len(rows))], Cursor: strconv.Itoa(i), TotalEstimate: len(rows)}
		err := db.InTx(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := q.WithTx(tx).ImportPageApply(ctx, &db.ImportPageParams{OrgID: e.orgID, IntegrationID: integID, RunID: runID, Page: page})
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	_, err := e.pool.Exec(ctx, "UPDATE import_runs SET state = 'SUCCEEDED' WHERE id = $1", runID)
	return d, err
}

type pipelineResult struct {
	elapsed time.Duration
	peakRSS int64
}

// pipeline starts a fresh server process, creates a Tave integration on a
// demo-n tenant, and times startImport until the run SUCCEEDED.
func (e *env) pipeline(ctx context.Context, n int) (*pipelineResult, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	srv, err := startProcess(ctx, e.bin, []string{
		"DATABASE_URL=" + e.dbURL, "CRMHUB_SECRET_KEY=" + key, "CRMHUB_ADDR=" + addr,
		"CRMHUB_LOG_LEVEL=warn", "CRMHUB_CRM_REQUESTS_PER_MINUTE=-1",
		// The bench polls the run every 5 ms: the API rate limit would
		// throttle the observer, not the import.
		"CRMHUB_RATE_LIMIT_PER_MINUTE=0",
	}, "serve")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	api := "http://" + addr + "/graphql"
	if err := waitHTTP("http://"+addr+"/readyz", nil); err != nil {
		return nil, err
	}
	var created struct {
		CreateIntegration struct{ Integration struct{ ID string } }
	}
	if err := e.gql(api, `mutation($url: String!, $key: String!) { createIntegration(input: {provider: TAVE, name: "bench", baseUrl: $url, credentials: {apiKey: $key}}) { integration { id } } }`,
		map[string]any{"url": e.simURL + "/tave/api/v2", "key": fmt.Sprintf("demo-%d", n)}, &created); err != nil {
		return nil, err
	}
	start := time.Now()
	var started struct {
		StartImport struct{ Run struct{ ID string } }
	}
	if err := e.gql(api, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`,
		map[string]any{"id": created.CreateIntegration.Integration.ID}, &started); err != nil {
		return nil, err
	}
	for {
		var run struct {
			Node struct {
				State     string
				Processed int
				Error     *struct{ Code, Message string }
			}
		}
		if err := e.gql(api, `query($id: ID!) { node(id: $id) { ... on ImportRun { state processed error { code message } } } }`,
			map[string]any{"id": started.StartImport.Run.ID}, &run); err != nil {
			return nil, err
		}
		switch run.Node.State {
		case "SUCCEEDED":
			elapsed := time.Since(start)
			if run.Node.Processed != n {
				return nil, fmt.Errorf("run processed %d, want %d", run.Node.Processed, n)
			}
			return &pipelineResult{elapsed: elapsed, peakRSS: srv.peakRSS()}, nil
		case "FAILED", "CANCELLED":
			return nil, fmt.Errorf("run ended %s: %+v", run.Node.State, run.Node.Error)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) gql(api, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, api, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("graphql: %s", res.Errors[0].Message)
	}
	return json.Unmarshal(res.Data, out)
}

type process struct{ cmd *exec.Cmd }

func startProcess(ctx context.Context, bin string, env []string, args ...string) (*process, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &process{cmd: cmd}, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// peakRSS is the process's peak resident set (VmHWM).
func (p *process) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHTTP(u string, headers map[string]string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out waiting for " + u)
}

func withDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}
