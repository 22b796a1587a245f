package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/auth"
	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/dbtest"
	"github.com/wedsync/crmhub/jobs"
	"github.com/wedsync/crmhub/resolvers"
)

// TestMain lets a test run the real binary: with CRMHUB_TEST_RUN_MAIN set,
// the test binary is crmhub itself.
func TestMain(m *testing.M) {
	if os.Getenv("CRMHUB_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"crmhub"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testBundle is a running server on a database of its own, with two
// organizations and tokens of every role.
type testBundle struct {
	pool      *pgxpool.Pool
	url       string
	dbURL     string
	secretKey string
	orgA      *db.Organization
	orgB      *db.Organization
	ownerA    string
	memberA   string
	ownerB    string
	support   string
}

func testSecretKey() string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b, _ := setupApp(t, false)
	return b
}

// testHTTPPolicy makes connectors retry fast: the simulator's faults are
// real, the waits need not be.
var testHTTPPolicy = crm.HTTPPolicy{
	Timeout: 2 * time.Second, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 10,
}

// setupApp starts the app on a database of its own; with work set, River
// works import jobs too (short slices, fast connector retries).
func setupApp(t *testing.T, work bool) (*testBundle, *app) {
	t.Helper()
	return setupAppWith(t, work, "", nil)
}

// setupAppConfig is setupApp with the config and options adjusted by tune
// (nil leaves them).
func setupAppConfig(t testing.TB, work bool, tune func(*Config, *serveOptions)) (*testBundle, *app) {
	t.Helper()
	return setupAppWith(t, work, "", tune)
}

// setupAppWith is setupApp on dbURL (a new database when empty), with
// changes to the config and options; an existing database is not seeded
// again, the bundle then has no organizations or tokens. Rate limits are off
// unless change turns them on: they have tests of their own.
func setupAppWith(t testing.TB, work bool, dbURL string, change func(*Config, *serveOptions)) (*testBundle, *app) {
	t.Helper()
	ctx := context.Background()
	seed := dbURL == ""
	if seed {
		dbURL = dbtest.URL(t)
	}
	cfg, err := loadConfig(func(string) string { return "" }, "text")
	require.NoError(t, err)
	cfg.DatabaseURL = dbURL
	cfg.SecretKey = testSecretKey()
	cfg.ImportSlice = 2 * time.Second
	cfg.Limits.RateLimitPerMinute = 0
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	opts := serveOptions{
		introspection: true,
		connectorFunc: jobs.NewConnector(jobs.ConnectorOptions{HTTP: testHTTPPolicy, RequestsPerMinute: -1}),
	}
	if change != nil {
		change(cfg, &opts)
	}
	a, err := newApp(ctx, cfg, log, opts)
	require.NoError(t, err)
	t.Cleanup(a.close)
	if work {
		require.NoError(t, a.river.Start(ctx))
		t.Cleanup(func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.river.Stop(stopCtx)
		})
	}
	srv := httptest.NewServer(a.handler)
	t.Cleanup(srv.Close)

	b := &testBundle{pool: a.pool, url: srv.URL, dbURL: dbURL, secretKey: cfg.SecretKey}
	if !seed {
		return b, a
	}
	q := db.New(a.pool)
	b.orgA, err = q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: "studio-a", Name: "Studio A"})
	require.NoError(t, err)
	b.orgB, err = q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: "studio-b", Name: "Studio B"})
	require.NoError(t, err)
	mk := func(orgID *int64, role auth.Role) string {
		token, _, err := resolvers.CreateToken(ctx, q, orgID, string(role), role)
		require.NoError(t, err)
		return token
	}
	b.ownerA = mk(&b.orgA.ID, auth.RoleOwner)
	b.memberA = mk(&b.orgA.ID, auth.RoleMember)
	b.ownerB = mk(&b.orgB.ID, auth.RoleOwner)
	b.support = mk(nil, auth.RoleSupport)
	return b, a
}

// gqlResponse is a GraphQL response with its HTTP status.
type gqlResponse struct {
	Status int
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// code is the extensions.code of the first error, or "".
func (r *gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// post sends a raw body to /graphql.
func (b *testBundle) post(t *testing.T, token, contentType string, body []byte) *gqlResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, out), "response is not JSON: %s", raw)
	return out
}

// gql runs a query as the holder of token.
func (b *testBundle) gql(t *testing.T, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return b.post(t, token, "application/json", body)
}

// mustGQL runs a query that must succeed.
func (b *testBundle) mustGQL(t *testing.T, token, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := b.gql(t, token, query, vars)
	require.Empty(t, r.Errors, "query failed: %+v", r.Errors)
	return r.Data
}

// dig walks a decoded JSON value by keys.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func globalIDFor(typ string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%s:%d", typ, id)))
}

func parseGID(gid string) (string, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil {
		return "", 0, err
	}
	typ, num, _ := strings.Cut(string(raw), ":")
	id, err := strconv.ParseInt(num, 10, 64)
	return typ, id, err
}
