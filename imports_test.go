package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/jobs"
)

// importBundle is a working server (River on) beside a CRM simulator.
type importBundle struct {
	*testBundle
	app    *app
	sim    *crmsim.Simulator
	simURL string
}

func setupImports(t *testing.T, simCfg crmsim.Config) *importBundle {
	t.Helper()
	b, a := setupApp(t, true)
	sim := crmsim.New(simCfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &importBundle{testBundle: b, app: a, sim: sim, simURL: srv.URL}
}

// integration creates an integration of org A on the simulator.
func (b *importBundle) integration(t *testing.T, provider, credential string) string {
	t.Helper()
	var q string
	switch provider {
	case "TAVE":
		q = `mutation($url: String!, $c: String!) { createIntegration(input: {provider: TAVE, name: "Tave", baseUrl: $url, credentials: {apiKey: $c}}) { integration { id } } }`
		return dig(b.mustGQL(t, b.ownerA, q, map[string]any{"url": b.simURL + "/tave/api/v2", "c": credential}), "createIntegration", "integration", "id").(string)
	case "HONEYBOOK":
		q = `mutation($url: String!, $c: String!) { createIntegration(input: {provider: HONEYBOOK, name: "HoneyBook", baseUrl: $url, credentials: {clientId: $c, clientSecret: "s"}}) { integration { id } } }`
		return dig(b.mustGQL(t, b.ownerA, q, map[string]any{"url": b.simURL + "/honeybook/api/v3", "c": credential}), "createIntegration", "integration", "id").(string)
	default:
		q = `mutation($p: Provider!) { createIntegration(input: {provider: $p, name: "Files"}) { integration { id } } }`
		return dig(b.mustGQL(t, b.ownerA, q, map[string]any{"p": provider}), "createIntegration", "integration", "id").(string)
	}
}

const runFields = `id state mode seq processed created updated unchanged rejected deleted totalEstimate percent attempt error { code message }`

func (b *importBundle) start(t *testing.T, token, integrationID, mode string) map[string]any {
	t.Helper()
	data := b.mustGQL(t, token, `mutation($id: ID!, $mode: ImportMode) { startImport(input: {integrationId: $id, mode: $mode}) { run { `+runFields+` } } }`,
		map[string]any{"id": integrationID, "mode": mode})
	return dig(data, "startImport", "run").(map[string]any)
}

func (b *importBundle) run(t *testing.T, token, runID string) map[string]any {
	t.Helper()
	data := b.mustGQL(t, token, `query($id: ID!) { node(id: $id) { ... on ImportRun { `+runFields+` } } }`, map[string]any{"id": runID})
	return data["node"].(map[string]any)
}

// wait polls a run until it ends (or the deadline passes), checking on the
// way that seq never goes backwards.
func (b *importBundle) wait(t *testing.T, runID string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	lastSeq := -1.0
	for {
		r := b.run(t, b.ownerA, runID)
		seq := r["seq"].(float64)
		require.GreaterOrEqual(t, seq, lastSeq, "seq went backwards")
		lastSeq = seq
		switch r["state"] {
		case "SUCCEEDED", "FAILED", "CANCELLED":
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end within %s: %v", runID, within, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveClients counts org A's clients that are not deleted, and checks no
// external id is there twice.
func (b *importBundle) liveClients(t *testing.T, integrationID string) int {
	t.Helper()
	_, id, err := parseGID(integrationID)
	require.NoError(t, err)
	var n, distinct int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"SELECT count(*), count(DISTINCT external_id) FROM clients WHERE integration_id = $1 AND deleted_at IS NULL", id).Scan(&n, &distinct))
	require.Equal(t, n, distinct, "duplicate clients")
	return n
}

func num(v any) int { return int(v.(float64)) }

func TestImportExact(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	for _, provider := range []string{"TAVE", "HONEYBOOK"} {
		t.Run(provider, func(t *testing.T) {
			integ := b.integration(t, provider, "demo-5000")
			run := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), time.Minute)
			require.Equal(t, "SUCCEEDED", run["state"], "%v", run)
			require.Equal(t, 5000, num(run["processed"]))
			require.Equal(t, 5000, num(run["created"]))
			require.Equal(t, 0, num(run["rejected"]))
			require.Equal(t, 100.0, run["percent"])
			require.Equal(t, 5000, b.liveClients(t, integ))

			again := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), time.Minute)
			require.Equal(t, "SUCCEEDED", again["state"])
			require.Equal(t, 5000, num(again["unchanged"]))
			require.Equal(t, 0, num(again["created"])+num(again["updated"])+num(again["deleted"]))
			require.Equal(t, 5000, b.liveClients(t, integ))

			data := b.mustGQL(t, b.ownerA, `query($id: ID!) { node(id: $id) { ... on Integration { lastSyncedAt lastRun { id state } } } }`, map[string]any{"id": integ})
			require.Equal(t, again["id"], dig(data, "node", "lastRun", "id"))
			require.NotNil(t, dig(data, "node", "lastSyncedAt"))
		})
	}
}

func TestImportIncremental(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := setupImports(t, crmsim.Config{NowFunc: clock, ChangeEpoch: now, ChangeInterval: time.Minute, ChangedPerInterval: 10, CreatedPerInterval: 3})

	for _, provider := range []string{"TAVE", "HONEYBOOK"} {
		t.Run(provider, func(t *testing.T) {
			const cred = "demo-2000+changing"
			integ := b.integration(t, provider, cred)
			full := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), time.Minute)
			require.Equal(t, "SUCCEEDED", full["state"], "%v", full)
			before, err := b.sim.Expect(cred)
			require.NoError(t, err)
			require.Equal(t, before.Good, b.liveClients(t, integ))

			// Five ticks of change: new records and new modified stamps.
			mu.Lock()
			since := now
			now = now.Add(5 * time.Minute)
			mu.Unlock()
			after, err := b.sim.Expect(cred)
			require.NoError(t, err)
			newRecords := after.Total - before.Total
			require.Equal(t, 15, newRecords)

			inc := b.wait(t, b.start(t, b.ownerA, integ, "INCREMENTAL")["id"].(string), time.Minute)
			require.Equal(t, "SUCCEEDED", inc["state"], "%v", inc)
			require.Equal(t, newRecords, num(inc["created"]))
			require.Equal(t, 0, num(inc["deleted"]), "INCREMENTAL never deletes")
			require.Equal(t, after.Good, b.liveClients(t, integ))
			if provider == "TAVE" {
				changed, err := b.sim.ModifiedSince(cred, since)
				require.NoError(t, err)
				// Only what changed was read: the new records and the
				// re-stamped ones, nothing of the other ~2000.
				require.Equal(t, len(changed), num(inc["processed"]))
				require.Equal(t, len(changed)-newRecords, num(inc["updated"])+num(inc["unchanged"]))
			} else {
				require.Equal(t, newRecords, num(inc["processed"]), "HoneyBook reads what was created since")
			}
		})
	}
}

func TestImportFaults(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{FlakyRetryAfter: 10 * time.Millisecond, StallDuration: 3 * time.Second})

	t.Run("Flaky", func(t *testing.T) {
		integ := b.integration(t, "TAVE", "demo-1500+flaky")
		run := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), 2*time.Minute)
		require.Equal(t, "SUCCEEDED", run["state"], "%v", run)
		require.Equal(t, 1500, b.liveClients(t, integ))
		require.Equal(t, 1500, num(run["created"]))
	})
	t.Run("Revoked", func(t *testing.T) {
		integ := b.integration(t, "HONEYBOOK", "demo-1000+revoked")
		started := time.Now()
		run := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), 10*time.Second)
		require.Less(t, time.Since(started), 5*time.Second)
		require.Equal(t, "FAILED", run["state"])
		require.Equal(t, "AUTH_FAILED", dig(run, "error", "code"))
		require.NotContains(t, dig(run, "error", "message"), "demo-1000", "no credential in the message")
		require.LessOrEqual(t, b.sim.Requests("demo-1000+revoked"), 3, "no retry storm")
		require.Equal(t, 1, num(run["attempt"]))
		data := b.mustGQL(t, b.ownerA, `query($id: ID!) { node(id: $id) { ... on Integration { status } } }`, map[string]any{"id": integ})
		require.Equal(t, "AUTH_FAILED", dig(data, "node", "status"))
	})
	t.Run("Messy", func(t *testing.T) {
		const cred = "demo-3000+messy"
		exp, err := b.sim.Expect(cred)
		require.NoError(t, err)
		require.Greater(t, exp.Messy, 10)
		integ := b.integration(t, "TAVE", cred)
		run := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), time.Minute)
		require.Equal(t, "SUCCEEDED", run["state"], "%v", run)
		require.Equal(t, exp.Good, b.liveClients(t, integ))
		require.Equal(t, exp.Messy, num(run["rejected"]))
		require.Equal(t, exp.Total, num(run["processed"]))

		data := b.mustGQL(t, b.ownerA, `query($id: ID!) { node(id: $id) { ... on ImportRun { rejects(first: 100) { totalCount nodes { rowNumber externalId reason raw } } } } }`, map[string]any{"id": run["id"]})
		require.Equal(t, exp.Messy, num(dig(data, "node", "rejects", "totalCount")))
		for _, rj := range dig(data, "node", "rejects", "nodes").([]any) {
			r := rj.(map[string]any)
			require.NotEmpty(t, r["reason"])
			require.NotEmpty(t, r["raw"])
			require.Positive(t, num(r["rowNumber"]))
		}
	})
}

func TestImportTransactionalEnqueue(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	integ := b.integration(t, "TAVE", "demo-10")
	// Make the last statement of the start transaction fail, after the job
	// was inserted: neither the run nor the job may survive.
	_, err := b.pool.Exec(context.Background(), `
		CREATE FUNCTION fail_last_run() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure'; END $$;
		CREATE TRIGGER fail_last_run BEFORE UPDATE OF last_run_id ON integrations
		FOR EACH ROW EXECUTE FUNCTION fail_last_run();`)
	require.NoError(t, err)
	r := b.gql(t, b.ownerA, `mutation($id: ID!) { startImport(input: {integrationId: $id}) { run { id } } }`, map[string]any{"id": integ})
	require.Equal(t, "INTERNAL", r.code())
	var runs, jobsN int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM import_runs), (SELECT count(*) FROM river_job WHERE kind = 'import')").Scan(&runs, &jobsN))
	require.Zero(t, runs)
	require.Zero(t, jobsN)

	_, err = b.pool.Exec(context.Background(), "DROP TRIGGER fail_last_run ON integrations")
	require.NoError(t, err)
	run := b.start(t, b.ownerA, integ, "FULL")
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM import_runs), (SELECT count(*) FROM river_job WHERE kind = 'import')").Scan(&runs, &jobsN))
	require.Equal(t, 1, runs)
	require.Equal(t, 1, jobsN)
	require.Equal(t, "SUCCEEDED", b.wait(t, run["id"].(string), time.Minute)["state"])
}

func TestImportStartRules(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{SlowLatency: 300 * time.Millisecond})
	integ := b.integration(t, "TAVE", "demo-2000+slow")

	first := b.start(t, b.memberA, integ, "FULL")
	second := b.start(t, b.ownerA, integ, "FULL")
	require.Equal(t, first["id"], second["id"], "one active run per integration")

	q := `mutation($id: ID!, $k: String) { startImport(input: {integrationId: $id, idempotencyKey: $k}) { run { id } } }`
	r := b.gql(t, b.support, q, map[string]any{"id": integ})
	require.Equal(t, "FORBIDDEN", r.code(), "SUPPORT retries and cancels, it does not start imports")
	r = b.gql(t, b.ownerB, q, map[string]any{"id": integ})
	require.Equal(t, "NOT_FOUND", r.code())

	// Cancel (by SUPPORT) mid-import: committed rows stay, nothing more is
	// written.
	require.Eventually(t, func() bool { return num(b.run(t, b.ownerA, first["id"].(string))["processed"]) > 0 }, 30*time.Second, 20*time.Millisecond)
	data := b.mustGQL(t, b.support, `mutation($id: ID!) { cancelImport(input: {id: $id}) { run { state error { code } } } }`, map[string]any{"id": first["id"]})
	require.Equal(t, "CANCELLED", dig(data, "cancelImport", "run", "state"))
	require.Equal(t, "CANCELLED", dig(data, "cancelImport", "run", "error", "code"))
	kept := b.liveClients(t, integ)
	require.Positive(t, kept)
	require.Less(t, kept, 2000)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, kept, b.liveClients(t, integ), "no page written after cancel")
	cancelled := b.run(t, b.ownerA, first["id"].(string))
	require.Equal(t, "CANCELLED", cancelled["state"])
	require.Equal(t, kept, num(cancelled["created"]))

	// Idempotency: the same key answers with the same run.
	a1 := dig(b.mustGQL(t, b.ownerA, q, map[string]any{"id": integ, "k": "venue-wifi-1"}), "startImport", "run", "id")
	a2 := dig(b.mustGQL(t, b.ownerA, q, map[string]any{"id": integ, "k": "venue-wifi-1"}), "startImport", "run", "id")
	require.Equal(t, a1, a2)
	require.NotEqual(t, first["id"], a1)
	b.mustGQL(t, b.ownerA, `mutation($id: ID!) { cancelImport(input: {id: $id}) { run { state } } }`, map[string]any{"id": a1})
	b.wait(t, a1.(string), 10*time.Second)
	a3 := dig(b.mustGQL(t, b.ownerA, q, map[string]any{"id": integ, "k": "venue-wifi-1"}), "startImport", "run", "id")
	require.Equal(t, a1, a3, "a key keeps answering with its run, ended or not")

	// Retry of a cancelled run starts a new one; other orgs cannot.
	r = b.gql(t, b.ownerB, `mutation($id: ID!) { retryImport(input: {id: $id}) { run { id } } }`, map[string]any{"id": first["id"]})
	require.Equal(t, "NOT_FOUND", r.code())
	data = b.mustGQL(t, b.support, `mutation($id: ID!) { retryImport(input: {id: $id}) { run { id state } } }`, map[string]any{"id": first["id"]})
	retried := dig(data, "retryImport", "run", "id").(string)
	require.NotEqual(t, first["id"], retried)
	r = b.gql(t, b.ownerA, `mutation($id: ID!) { retryImport(input: {id: $id}) { run { id } } }`, map[string]any{"id": retried})
	require.Equal(t, "BAD_USER_INPUT", r.code(), "an active run cannot be retried")
	b.mustGQL(t, b.ownerA, `mutation($id: ID!) { cancelImport(input: {id: $id}) { run { state } } }`, map[string]any{"id": retried})

	// The run list filters by state and integration.
	data = b.mustGQL(t, b.ownerA, `query($i: ID!) { organization { importRuns(filter: {state: [CANCELLED], integrationId: $i}) { totalCount nodes { state } } } }`, map[string]any{"i": integ})
	require.Equal(t, 3, num(dig(data, "organization", "importRuns", "totalCount")))
}

func TestImportConcurrency(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	const n = 50
	runs := make([]string, n)
	integs := make([]string, n)
	for i := range n {
		integs[i] = b.integration(t, "TAVE", "demo-1000")
		runs[i] = b.start(t, b.ownerA, integs[i], "FULL")["id"].(string)
	}
	for i := range n {
		run := b.wait(t, runs[i], 3*time.Minute)
		require.Equal(t, "SUCCEEDED", run["state"], "%v", run)
		require.Equal(t, 1000, num(run["created"]))
		require.Equal(t, 1000, b.liveClients(t, integs[i]))
	}
}

// upload sends a GraphQL multipart request (the spec frontends use).
func (b *importBundle) upload(t *testing.T, integrationID, format, filename string, content []byte, mapping []map[string]string) *gqlResponse {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: ImportFileInput!) { importFile(input: $in) { run { ` + runFields + ` } } }`,
		"variables": map[string]any{"in": map[string]any{"integrationId": integrationID, "file": nil, "format": format, "columnMapping": mapping}},
	})
	require.NoError(t, w.WriteField("operations", string(ops)))
	require.NoError(t, w.WriteField("map", `{"0": ["variables.in.file"]}`))
	fw, err := w.CreateFormFile("0", filename)
	require.NoError(t, err)
	_, _ = fw.Write(content)
	require.NoError(t, w.Close())
	req, err := http.NewRequest(http.MethodPost, b.url+"/graphql", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+b.ownerA)
	req.Header.Set("GraphQL-Require-Preflight", "1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, out), "%s", raw)
	return out
}

func TestImportFile(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	integ := b.integration(t, "CSV", "")

	t.Run("GenericWithBadRows", func(t *testing.T) {
		csv := "Name;E-mail;Wedding\n" +
			"Emma Clarke;emma@example.com;2027-06-12\n" +
			"James Okafor;not-an-email;2027-07-01\n" +
			"Ava Brown;ava@example.com;2027-02-30\n" +
			"Mia Lopez;mia@example.com;2027-09-18\n"
		r := b.upload(t, integ, "GENERIC_CSV", "clients.csv", []byte(csv),
			[]map[string]string{{"field": "fullName", "column": "Name"}, {"field": "email", "column": "E-mail"}, {"field": "eventDate", "column": "Wedding"}})
		require.Empty(t, r.Errors)
		run := b.wait(t, dig(r.Data, "importFile", "run", "id").(string), 30*time.Second)
		require.Equal(t, "SUCCEEDED", run["state"], "%v", run)
		require.Equal(t, 2, num(run["created"]))
		require.Equal(t, 2, num(run["rejected"]))
		data := b.mustGQL(t, b.ownerA, `query($id: ID!) { node(id: $id) { ... on ImportRun { rejects { nodes { rowNumber reason } } } } }`, map[string]any{"id": run["id"]})
		rejects := dig(data, "node", "rejects", "nodes").([]any)
		require.Len(t, rejects, 2)
		require.Equal(t, 2, num(dig(rejects[0], "rowNumber")))
		require.Contains(t, strings.ToLower(dig(rejects[0], "reason").(string)), "email")
		require.Equal(t, 3, num(dig(rejects[1], "rowNumber")))
		require.Contains(t, strings.ToLower(dig(rejects[1], "reason").(string)), "date")
	})
	t.Run("InvalidFile", func(t *testing.T) {
		r := b.upload(t, integ, "HONEYBOOK_LEADS_CSV", "leads.csv", []byte("\xff\xfe\x00garbage\x00\x01\n\x80\x81"), nil)
		require.Empty(t, r.Errors)
		run := b.wait(t, dig(r.Data, "importFile", "run", "id").(string), 30*time.Second)
		require.Equal(t, "FAILED", run["state"])
		require.Equal(t, "BAD_FILE", dig(run, "error", "code"))
		require.NotEmpty(t, dig(run, "error", "message"))
	})
	t.Run("BadMappingIsRefusedAtOnce", func(t *testing.T) {
		r := b.upload(t, integ, "GENERIC_CSV", "x.csv", []byte("a\n1\n"), []map[string]string{{"field": "shoeSize", "column": "a"}})
		require.Equal(t, "BAD_USER_INPUT", r.code(), "%+v", r.Errors)
	})
	t.Run("NotIntoAnAPIIntegration", func(t *testing.T) {
		tave := b.integration(t, "TAVE", "demo-1")
		r := b.upload(t, tave, "GENERIC_CSV", "x.csv", []byte("a\n1\n"), []map[string]string{{"field": "email", "column": "a"}})
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})
}

func TestAutoSync(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	integ := b.integration(t, "TAVE", "demo-300")
	full := b.wait(t, b.start(t, b.ownerA, integ, "FULL")["id"].(string), time.Minute)
	require.Equal(t, "SUCCEEDED", full["state"])

	// Turn auto-sync on and make the last sync look old: River's leader runs
	// the scheduler at start and every minute, and it starts an INCREMENTAL
	// run.
	b.mustGQL(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, autoSyncMinutes: 5}) { integration { autoSyncMinutes } } }`, map[string]any{"id": integ})
	_, id, err := parseGID(integ)
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(), "UPDATE integrations SET last_synced_at = now() - interval '6 minutes' WHERE id = $1", id)
	require.NoError(t, err)
	_, err = b.app.river.Insert(context.Background(), jobs.SyncSchedulerArgs{}, nil)
	require.NoError(t, err)

	var auto map[string]any
	require.Eventually(t, func() bool {
		data := b.mustGQL(t, b.ownerA, `query($i: ID!) { organization { importRuns(filter: {integrationId: $i}) { nodes { id mode state } } } }`, map[string]any{"i": integ})
		nodes := dig(data, "organization", "importRuns", "nodes").([]any)
		if len(nodes) < 2 {
			return false
		}
		auto = nodes[0].(map[string]any)
		return true
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, "INCREMENTAL", auto["mode"])
	require.Equal(t, "SUCCEEDED", b.wait(t, auto["id"].(string), time.Minute)["state"])

	// A second scheduler pass finds nothing due: the sync just happened.
	_, err = b.app.river.Insert(context.Background(), jobs.SyncSchedulerArgs{}, nil)
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	data := b.mustGQL(t, b.ownerA, `query($i: ID!) { organization { importRuns(filter: {integrationId: $i}) { totalCount } } }`, map[string]any{"i": integ})
	require.Equal(t, 2, num(dig(data, "organization", "importRuns", "totalCount")))
}

func TestImportFileTooLarge(t *testing.T) {
	t.Parallel()
	b := setupImports(t, crmsim.Config{})
	integ := b.integration(t, "CSV", "")
	big := bytes.Repeat([]byte("Emma Clarke,emma@example.com\n"), (51<<20)/29)
	r := b.upload(t, integ, "GENERIC_CSV", "huge.csv", big, []map[string]string{{"field": "fullName", "column": "a"}})
	require.NotEmpty(t, r.Errors)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
	require.Contains(t, r.Errors[0].Message, "50 MiB")
	require.Equal(t, "BAD_USER_INPUT", r.code())
	var files int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM import_files").Scan(&files))
	require.Zero(t, files, "nothing stored")
}
