package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/auth"
)

// rawResponse is a decoded GraphQL response with its HTTP status and
// headers.
type rawResponse struct {
	Status int
	Header http.Header
	// Raw is the body as it came.
	Raw        []byte           `json:"-"`
	Data       map[string]any   `json:"data"`
	Errors     []map[string]any `json:"errors"`
	Extensions map[string]any   `json:"extensions"`
}

func (r *rawResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := dig(r.Errors[0], "extensions", "code").(string)
	return c
}

func (r *rawResponse) message() string {
	if len(r.Errors) == 0 {
		return ""
	}
	m, _ := r.Errors[0]["message"].(string)
	return m
}

// send posts body to /graphql with the given headers.
func (b *testBundle) send(t *testing.T, token, contentType string, headers map[string]string, body []byte) *rawResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &rawResponse{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	require.NoError(t, json.Unmarshal(raw, out), "response is not JSON: %s", raw)
	return out
}

func (b *testBundle) query(t *testing.T, token, query string, vars map[string]any) *rawResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return b.send(t, token, "application/json", nil, body)
}

func TestQueryCost(t *testing.T) {
	t.Parallel()
	b, _ := setupAppConfig(t, false, func(cfg *Config, _ *serveOptions) {
		cfg.Limits.MaxComplexity = 500
		cfg.Limits.MaxDepth = 6
		cfg.Limits.MaxAliases = 2
	})

	t.Run("ReportedInExtensions", func(t *testing.T) {
		// organization 1 + clients 1 + 20 × (node 1 + id 1 + email 1) = 62.
		r := b.query(t, b.ownerA, `{ organization { clients(first: 20) { nodes { id email } } } }`, nil)
		require.Empty(t, r.Errors)
		require.EqualValues(t, 62, dig(r.Extensions, "cost", "requested"))
		require.EqualValues(t, 500, dig(r.Extensions, "cost", "limit"))
	})
	t.Run("PageSizeFromNetworkAndHints", func(t *testing.T) {
		r := b.query(t, b.ownerA, `query($n: NetworkQuality) { organization { clients(network: $n) { nodes { id } } } }`, map[string]any{"n": "SLOW"})
		require.EqualValues(t, 2+10*2, dig(r.Extensions, "cost", "requested"))
		r = b.query(t, b.ownerA, `{ organization { clients { nodes { id } } } }`, nil)
		require.EqualValues(t, 2+50*2, dig(r.Extensions, "cost", "requested"), "MEDIUM by default")
		body := []byte(`{"query": "{ organization { clients { nodes { id } } } }"}`)
		r = b.send(t, b.ownerA, "application/json", map[string]string{"Save-Data": "on"}, body)
		require.EqualValues(t, 2+10*2, dig(r.Extensions, "cost", "requested"), "client hints pick SLOW")
	})
	t.Run("NestedConnectionsMultiply", func(t *testing.T) {
		r := b.query(t, b.ownerA, `{ organization { importRuns(first: 10) { nodes { rejects(first: 10) { nodes { reason } } } } } }`, nil)
		// 1 + 1 + 10 × (1 + 1 + 10 × 2) = 222.
		require.Empty(t, r.Errors)
		require.EqualValues(t, 222, dig(r.Extensions, "cost", "requested"))
		r = b.query(t, b.ownerA, `{ organization { importRuns(first: 30) { nodes { rejects(first: 30) { nodes { reason } } } } } }`, nil)
		require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", r.code())
		require.Nil(t, r.Data["organization"], "no resolver ran")
		require.EqualValues(t, 1862, dig(r.Extensions, "cost", "requested"))
	})
	t.Run("DepthAndAliasesConfigurable", func(t *testing.T) {
		// Six levels pass, seven do not.
		r := b.query(t, b.ownerA, `{ organization { integrations { nodes { lastRun { integration { name } } } } } }`, nil)
		require.Empty(t, r.Errors)
		r = b.query(t, b.ownerA, `{ organization { integrations { nodes { lastRun { integration { lastRun { id } } } } } } }`, nil)
		require.Equal(t, "DEPTH_LIMIT_EXCEEDED", r.code())
		r = b.query(t, b.ownerA, `{ a: viewer { role } b: viewer { role } c: viewer { role } }`, nil)
		require.Equal(t, "COMPLEXITY_LIMIT_EXCEEDED", r.code())
	})
	t.Run("FromEnvironment", func(t *testing.T) {
		env := map[string]string{
			"CRMHUB_MAX_COMPLEXITY": "2000", "CRMHUB_MAX_DEPTH": "8", "CRMHUB_MAX_ALIASES": "5",
			"CRMHUB_MAX_FIELD_REPEATS": "3", "CRMHUB_MAX_QUERY_TOKENS": "1000", "CRMHUB_MAX_BODY_BYTES": "65536",
			"CRMHUB_RATE_LIMIT_PER_MINUTE": "100", "CRMHUB_RATE_LIMIT_BURST": "10",
			"CRMHUB_ANON_RATE_LIMIT_PER_MINUTE": "10", "CRMHUB_ANON_RATE_LIMIT_BURST": "2", "CRMHUB_INTROSPECTION": "on",
		}
		cfg, err := loadConfig(func(k string) string { return env[k] }, "json")
		require.NoError(t, err)
		require.Equal(t, Limits{
			MaxComplexity: 2000, MaxDepth: 8, MaxAliases: 5, MaxFieldRepeats: 3, MaxQueryTokens: 1000, MaxBodyBytes: 65536,
			RateLimitPerMinute: 100, RateLimitBurst: 10, AnonRateLimitPerMinute: 10, AnonRateLimitBurst: 2, Introspection: true,
		}, cfg.Limits)
		_, err = loadConfig(func(k string) string { return map[string]string{"CRMHUB_MAX_DEPTH": "deep"}[k] }, "json")
		require.ErrorContains(t, err, "CRMHUB_MAX_DEPTH")
	})
}

func TestTransportLimits(t *testing.T) {
	t.Parallel()
	b, _ := setupAppConfig(t, false, func(cfg *Config, _ *serveOptions) { cfg.Limits.MaxBodyBytes = 4096 })

	t.Run("BodyLimitConfigurable", func(t *testing.T) {
		body := []byte(`{"query": "{ viewer { role } }", "variables": {"pad": "` + strings.Repeat("x", 5000) + `"}}`)
		r := b.send(t, b.ownerA, "application/json", nil, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		require.Contains(t, r.message(), "4096 bytes")
	})
	t.Run("Batched", func(t *testing.T) {
		r := b.send(t, b.ownerA, "application/json", nil, []byte(`[{"query": "{ viewer { role } }"}]`))
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Contains(t, r.message(), "batched")
	})
	t.Run("GetOnlyForQueries", func(t *testing.T) {
		get := func(q string) (*http.Response, string) {
			req, err := http.NewRequest(http.MethodGet, b.url+"/graphql?query="+urlQueryEscape(q), nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+b.ownerA)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return resp, string(raw)
		}
		resp, body := get(`{ viewer { role } }`)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `"OWNER"`)
		resp, body = get(`mutation { createApiToken(input: {name: "x", role: OWNER}) { token } }`)
		require.Equal(t, http.StatusNotAcceptable, resp.StatusCode)
		require.Contains(t, body, "GET requests only allow query operations")
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM api_tokens WHERE name = 'x'").Scan(&n))
		require.Zero(t, n)
	})
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "{", "%7B", "}", "%7D", "\"", "%22", ":", "%3A", ",", "%2C", "(", "%28", ")", "%29", "&", "%26", "#", "%23", "+", "%2B")
	return r.Replace(s)
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t)
	query := []byte(`{"query": "{ viewer { role } }"}`)

	multipartBody := func() (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("operations", `{"query": "{ viewer { role } }"}`))
		require.NoError(t, mw.WriteField("map", `{}`))
		require.NoError(t, mw.Close())
		return mw.FormDataContentType(), buf.Bytes()
	}

	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		r := b.send(t, b.ownerA, ct, nil, query)
		require.Equal(t, http.StatusBadRequest, r.Status, ct)
		require.Equal(t, "BAD_USER_INPUT", r.code(), ct)
		require.Contains(t, r.message(), "GraphQL-Require-Preflight", ct)
	}

	ct, body := multipartBody()
	r := b.send(t, b.ownerA, ct, nil, body)
	require.Equal(t, http.StatusBadRequest, r.Status)
	for _, h := range []string{"GraphQL-Require-Preflight", "Apollo-Require-Preflight"} {
		r = b.send(t, b.ownerA, ct, map[string]string{h: "1"}, body)
		require.Empty(t, r.Errors, h)
		require.Equal(t, "OWNER", dig(r.Data, "viewer", "role"), h)
	}
	// JSON needs a preflight from a browser anyway.
	r = b.send(t, b.ownerA, "application/json", nil, query)
	require.Equal(t, "OWNER", dig(r.Data, "viewer", "role"))
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b, _ := setupAppConfig(t, false, func(cfg *Config, _ *serveOptions) {
		cfg.Limits.RateLimitPerMinute, cfg.Limits.RateLimitBurst = 6, 3
		cfg.Limits.AnonRateLimitPerMinute, cfg.Limits.AnonRateLimitBurst = 6, 2
	})
	q := `{ viewer { role } }`
	for range 3 {
		require.Empty(t, b.query(t, b.ownerA, q, nil).Errors)
	}
	r := b.query(t, b.ownerA, q, nil)
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.Equal(t, "RATE_LIMITED", r.code())
	require.Equal(t, "10", r.Header.Get("Retry-After"), "one request every 10 s")
	require.EqualValues(t, 10, dig(r.Errors[0], "extensions", "retryAfterSeconds"))

	// Another token of the same organization has its own bucket.
	require.Empty(t, b.query(t, b.memberA, q, nil).Errors)

	// Without a token, the client IP is limited, more tightly.
	for range 2 {
		require.Equal(t, "UNAUTHENTICATED", b.query(t, "", q, nil).code())
	}
	r = b.query(t, "", q, nil)
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.Equal(t, "RATE_LIMITED", r.code())
	// A bad token counts as no token.
	require.Equal(t, "RATE_LIMITED", b.query(t, "chub_bogus", q, nil).code())
}

func TestIntrospectionPolicy(t *testing.T) {
	t.Parallel()
	serve, _ := setupAppConfig(t, false, func(_ *Config, opts *serveOptions) { opts.introspection = false })
	on, _ := setupAppConfig(t, false, func(cfg *Config, opts *serveOptions) {
		opts.introspection = false
		cfg.Limits.Introspection = true
	})
	const schemaQuery = `{ __schema { queryType { name } } }`

	t.Run("ServeOnlySupport", func(t *testing.T) {
		for _, token := range []string{serve.ownerA, serve.memberA} {
			r := serve.query(t, token, schemaQuery, nil)
			require.Equal(t, "FORBIDDEN", r.code())
			require.Contains(t, r.message(), "SUPPORT")
			require.Nil(t, r.Data["__schema"])
		}
		r := serve.query(t, serve.support, schemaQuery, nil)
		require.Empty(t, r.Errors)
		require.Equal(t, "Query", dig(r.Data, "__schema", "queryType", "name"))
		r = serve.query(t, serve.ownerA, `{ __type(name: "Client") { fields { name } } }`, nil)
		require.Equal(t, "FORBIDDEN", r.code())
	})
	t.Run("ServeSuggestionsOnlySupport", func(t *testing.T) {
		r := serve.query(t, serve.ownerA, `{ viewr { role } }`, nil)
		require.Equal(t, "BAD_USER_INPUT", r.code())
		require.NotContains(t, r.message(), "Did you mean")
		require.Contains(t, r.message(), `Cannot query field "viewr"`)
		r = serve.query(t, serve.ownerA, `{ organization { clients(frist: 1) { pageSize } } }`, nil)
		require.NotContains(t, r.message(), "Did you mean")
		r = serve.query(t, serve.support, `{ viewr { role } }`, nil)
		require.Contains(t, r.message(), `Did you mean "viewer"?`)
	})
	t.Run("ConfiguredOn", func(t *testing.T) {
		r := on.query(t, on.ownerA, schemaQuery, nil)
		require.Empty(t, r.Errors)
		r = on.query(t, on.ownerA, `{ viewr { role } }`, nil)
		require.Contains(t, r.message(), "Did you mean")
	})
	t.Run("DevOn", func(t *testing.T) {
		dev := setup(t) // setupApp runs with dev's introspection.
		require.Empty(t, dev.query(t, dev.memberA, schemaQuery, nil).Errors)
	})
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	integB := createIntegration(t, b, b.ownerB, "Tave B", "demo-5")
	for i := range 3 {
		insertClient(t, b, b.orgB.ID, integB, "b-"+string(rune('a'+i)))
	}
	var clientID, runID int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM clients WHERE org_id = $1 ORDER BY id LIMIT 1", b.orgB.ID).Scan(&clientID))
	_, intID, err := parseGID(integB)
	require.NoError(t, err)
	require.NoError(t, b.pool.QueryRow(ctx, `
		INSERT INTO import_runs (org_id, integration_id, mode, state) VALUES ($1, $2, 'FULL', 'FAILED') RETURNING id`,
		b.orgB.ID, intID).Scan(&runID))
	orgB := globalIDFor("Organization", b.orgB.ID)

	auditLog := func(token string) *rawResponse {
		return b.query(t, token, `query($id: ID) { organization(id: $id) { auditLog(first: 50) {
			totalCount nodes { at actorName actorRole action targetId } } } }`, map[string]any{"id": orgB})
	}
	require.Zero(t, dig(auditLog(b.ownerB).Data, "organization", "auditLog", "totalCount"), "nothing yet")

	// Owners and members reading their own clients are not audited.
	b.mustGQL(t, b.ownerB, `{ organization { clients { nodes { email } } } }`, nil)

	// SUPPORT reads B's clients: one row for the request, not one per client.
	b.mustGQL(t, b.support, `query($id: ID) { organization(id: $id) { clients { nodes { email } edges { node { id } } } } }`, map[string]any{"id": orgB})
	// SUPPORT reads one client.
	b.mustGQL(t, b.support, `query($id: ID!) { node(id: $id) { ... on Client { email } } }`, map[string]any{"id": globalIDFor("Client", clientID)})
	// SUPPORT reads B's organization without client data: no row.
	b.mustGQL(t, b.support, `query($id: ID) { organization(id: $id) { name integrations { nodes { name } } } }`, map[string]any{"id": orgB})
	// SUPPORT retries B's failed run, then cancels the new one.
	retried := b.mustGQL(t, b.support, `mutation($id: ID!) { retryImport(input: {id: $id}) { run { id } } }`, map[string]any{"id": globalIDFor("ImportRun", runID)})
	newRun := dig(retried, "retryImport", "run", "id").(string)
	b.mustGQL(t, b.support, `mutation($id: ID!) { cancelImport(input: {id: $id}) { run { state } } }`, map[string]any{"id": newRun})

	r := auditLog(b.ownerB)
	require.Empty(t, r.Errors)
	require.EqualValues(t, 4, dig(r.Data, "organization", "auditLog", "totalCount"))
	nodes := dig(r.Data, "organization", "auditLog", "nodes").([]any)
	var actions []string
	for _, n := range nodes {
		e := n.(map[string]any)
		actions = append(actions, e["action"].(string))
		require.Equal(t, "SUPPORT", e["actorRole"])
		require.Equal(t, "SUPPORT", e["actorName"])
		require.NotEmpty(t, e["at"])
	}
	require.Equal(t, []string{"CANCEL_IMPORT", "RETRY_IMPORT", "READ_CLIENTS", "READ_CLIENTS"}, actions, "newest first")
	require.Equal(t, newRun, dig(nodes[0], "targetId"))
	require.Equal(t, globalIDFor("Client", clientID), dig(nodes[2], "targetId"))

	// Only B's OWNER reads it.
	require.Equal(t, "FORBIDDEN", auditLog(b.support).code())
	r = b.query(t, b.memberA, `{ organization { auditLog { totalCount } } }`, nil)
	require.Equal(t, "FORBIDDEN", r.code())
	require.Equal(t, "NOT_FOUND", auditLog(b.ownerA).code())
	r = b.query(t, b.ownerA, `{ organization { auditLog { totalCount } } }`, nil)
	require.Empty(t, r.Errors)
	require.Zero(t, dig(r.Data, "organization", "auditLog", "totalCount"), "A's log is empty")

	// Paging.
	r = b.query(t, b.ownerB, `query($id: ID) { organization(id: $id) { auditLog(first: 3) { pageInfo { hasNextPage endCursor } } } }`, map[string]any{"id": orgB})
	require.Equal(t, true, dig(r.Data, "organization", "auditLog", "pageInfo", "hasNextPage"))
	r = b.query(t, b.ownerB, `query($id: ID, $after: String) { organization(id: $id) { auditLog(first: 3, after: $after) { nodes { action } pageInfo { hasNextPage } } } }`,
		map[string]any{"id": orgB, "after": dig(r.Data, "organization", "auditLog", "pageInfo", "endCursor")})
	require.Len(t, dig(r.Data, "organization", "auditLog", "nodes"), 1)
	require.Equal(t, false, dig(r.Data, "organization", "auditLog", "pageInfo", "hasNextPage"))
}

func TestRotateKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	oldKey := b.secretKey
	newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	for i := range 5 {
		createIntegration(t, b, b.ownerA, "Tave "+string(rune('a'+i)), "demo-key-a"+string(rune('a'+i)))
	}
	createIntegration(t, b, b.ownerB, "Tave B", "demo-key-b")
	// A file integration has no credentials.
	b.mustGQL(t, b.ownerA, `mutation { createIntegration(input: {provider: CSV, name: "file"}) { integration { id } } }`, nil)

	oldSealer, err := auth.NewSealer(oldKey)
	require.NoError(t, err)
	newSealer, err := auth.NewSealer(newKey)
	require.NoError(t, err)
	env := map[string]string{"DATABASE_URL": b.dbURL, "CRMHUB_SECRET_KEY": newKey, "CRMHUB_OLD_SECRET_KEYS": oldKey}

	out, err := runCmd(t, env, "rotate-key", "--batch", "2")
	require.NoError(t, err)
	require.Contains(t, out, "6 re-sealed under key "+newSealer.KeyID()+", 0 already under it")

	var underNew int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM integrations WHERE credentials_key_id = $1", newSealer.KeyID()).Scan(&underNew))
	require.Equal(t, 6, underNew)
	rows, err := b.pool.Query(ctx, "SELECT org_id, credentials_sealed, credentials_key_id FROM integrations WHERE credentials_sealed IS NOT NULL")
	require.NoError(t, err)
	for rows.Next() {
		var orgID int64
		var sealed []byte
		var keyID string
		require.NoError(t, rows.Scan(&orgID, &sealed, &keyID))
		creds, err := newSealer.OpenCredentials(orgID, sealed, keyID)
		require.NoError(t, err, "the new key alone opens it")
		require.True(t, strings.HasPrefix(creds.APIKey, "demo-key-"))
		_, err = oldSealer.OpenCredentials(orgID, sealed, keyID)
		require.Error(t, err, "the old key no longer does")
	}
	require.NoError(t, rows.Err())

	// Again: nothing to do.
	out, err = runCmd(t, env, "rotate-key")
	require.NoError(t, err)
	require.Contains(t, out, "0 re-sealed under key "+newSealer.KeyID()+", 6 already under it")

	// A credential under a key nobody has is reported, not lost.
	_, err = b.pool.Exec(ctx, "UPDATE integrations SET credentials_key_id = 'deadbeef' WHERE id = (SELECT min(id) FROM integrations)")
	require.NoError(t, err)
	out, err = runCmd(t, env, "rotate-key")
	require.ErrorContains(t, err, "CRMHUB_OLD_SECRET_KEYS")
	require.Contains(t, out, "1 could not be opened")
}

func TestRiverUI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	get := func(user, password string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, b.url+"/riverui/api/jobs?limit=5", nil)
		require.NoError(t, err)
		if password != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get("", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
	require.Equal(t, http.StatusUnauthorized, get("x", b.ownerA).StatusCode, "OWNER is not support")
	require.Equal(t, http.StatusUnauthorized, get("x", "chub_wrong").StatusCode)
	require.Equal(t, http.StatusOK, get("anyone", b.support).StatusCode)

	req, err := http.NewRequest(http.MethodGet, b.url+"/riverui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("support", b.support)
	page, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	require.Equal(t, http.StatusOK, page.StatusCode)
	require.Contains(t, string(html), "<html")
}
