package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/dbtest"
)

// runCmd runs a crmhub command in-process with the given environment.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return strings.TrimSpace(out.String()), err
}

func TestServeRefusesMissingConfig(t *testing.T) {
	t.Parallel()
	// The real binary, as an operator would run it: the test binary is
	// crmhub when CRMHUB_TEST_RUN_MAIN is set.
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = []string{"CRMHUB_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	require.NotEqual(t, 0, exitErr.ExitCode())
	require.Contains(t, string(out), "DATABASE_URL is not set")
	require.Contains(t, string(out), "CRMHUB_SECRET_KEY is not set")
	require.Contains(t, string(out), "openssl rand -base64 32")

	// A bad key is refused with the same advice.
	_, err = runCmd(t, map[string]string{"DATABASE_URL": dbtest.URL(t), "CRMHUB_SECRET_KEY": "c2hvcnQ="}, "serve")
	require.ErrorContains(t, err, "openssl rand -base64 32")
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), "DROP TABLE crmhub_migrations")
	require.NoError(t, err)
	_, err = runCmd(t, map[string]string{"DATABASE_URL": url, "CRMHUB_SECRET_KEY": testSecretKey()}, "serve")
	require.ErrorIs(t, err, db.ErrNotMigrated)
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	// A database that has never been migrated.
	url := dbtest.URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
	require.NoError(t, err)

	env := map[string]string{"DATABASE_URL": url}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = runCmd(t, env, "migrate") })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	_, err = runCmd(t, env, "migrate")
	require.NoError(t, err, "migrating again is a no-op")

	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM crmhub_migrations").Scan(&n))
	files, err := os.ReadDir("db/migrations")
	require.NoError(t, err)
	require.Equal(t, len(files), n, "one row per migration")
	require.NoError(t, db.CheckMigrated(context.Background(), pool))
	var jobs int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job").Scan(&jobs), "River's tables exist")
}

func TestOrgAndTokenCommands(t *testing.T) {
	t.Parallel()
	b := setup(t)
	env := map[string]string{"DATABASE_URL": b.dbURL}

	id, err := runCmd(t, env, "org", "create", "--slug", "bloom-weddings", "--name", "Bloom Weddings")
	require.NoError(t, err)
	require.NotEmpty(t, id)
	_, err = runCmd(t, env, "org", "create", "--slug", "bloom-weddings", "--name", "Again")
	require.ErrorContains(t, err, "exists already")
	_, err = runCmd(t, env, "org", "create", "--slug", "bloom")
	require.ErrorContains(t, err, "required")

	token, err := runCmd(t, env, "token", "create", "--org", "bloom-weddings", "--role", "OWNER", "--name", "laptop")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token, "chub_"))
	require.NotContains(t, token, "\n", "the token alone on stdout")
	data := b.mustGQL(t, token, `{ viewer { role tokenName organization { id slug } } }`, nil)
	require.Equal(t, "laptop", dig(data, "viewer", "tokenName"))
	require.Equal(t, id, dig(data, "viewer", "organization", "id"))

	support, err := runCmd(t, env, "token", "create", "--role", "SUPPORT")
	require.NoError(t, err)
	data = b.mustGQL(t, support, `{ viewer { role } }`, nil)
	require.Equal(t, "SUPPORT", dig(data, "viewer", "role"))

	_, err = runCmd(t, env, "token", "create", "--role", "SUPPORT", "--org", "bloom-weddings")
	require.Error(t, err)
	_, err = runCmd(t, env, "token", "create", "--role", "OWNER")
	require.ErrorContains(t, err, "--org is required")
	_, err = runCmd(t, env, "token", "create", "--org", "nope", "--role", "MEMBER")
	require.ErrorContains(t, err, "no organization")
	_, err = runCmd(t, env, "token", "create", "--org", "bloom-weddings", "--role", "ADMIN")
	require.ErrorContains(t, err, "--role must be")
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(b.url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, _ := get("/livez")
	require.Equal(t, 200, code)
	code, body := get("/readyz")
	require.Equal(t, 200, code)
	require.Contains(t, body, "database: ok")

	b.mustGQL(t, b.ownerA, `{ viewer { role } }`, nil)
	code, body = get("/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, `crmhub_http_requests_total{code="200",route="/graphql"}`)
	require.Contains(t, body, `crmhub_graphql_responses_total{operation="query",outcome="ok"}`)
	require.Contains(t, body, "crmhub_graphql_operation_duration_seconds_bucket")
	require.Contains(t, body, "crmhub_db_pool_max_conns")
}

func TestReadyzReportsDatabaseDown(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	pool.Close() // A closed pool fails every ping, as a dead database would.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	hub, err := db.NewHub(db.HubConfig{ConnConfig: pool.Config().ConnConfig, Channels: []string{db.ProgressChannel}})
	require.NoError(t, err)
	readyz(pool, hub)(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), "unavailable")
	require.Contains(t, rec.Body.String(), "progress hub: reconnecting")
}
