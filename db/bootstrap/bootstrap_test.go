package bootstrap_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wedsync/crmhub/db/bootstrap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// noProbe is an address where no PostgreSQL answers, to force the private
// cluster.
const noProbe = "127.0.0.1:1"

type testBundle struct {
	ctx context.Context
	log *slog.Logger
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &testBundle{ctx: ctx, log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// testWriter sends log lines to t.Log so they show with -v or on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// enterableTempDir returns a new directory under the system temp directory
// that the postgres user can enter when the test runs as root. t.TempDir()
// cannot be used for that: its parents are root's and mode 0700.
func enterableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "crmhub-bootstrap-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(dir)) })
	return dir
}

// query runs a one-row query on dbURL and scans the row into dest.
func query(t *testing.T, ctx context.Context, dbURL, sql string, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(dest...))
}

func TestEnsurePrivate(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	cfg := bootstrap.Config{
		ProbeAddr:    noProbe,
		DataDir:      filepath.Join(enterableTempDir(t), "nested", "postgres"),
		Fast:         true,
		StartTimeout: 20 * time.Second,
	}

	// Several processes (test binaries) start at once on a new machine: one
	// initializes and starts the cluster, the others wait and reuse it.
	const n = 3
	results := make([]*bootstrap.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = bootstrap.Ensure(bundle.ctx, bundle.log, cfg) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	res := results[0]
	t.Cleanup(func() { require.NoError(t, res.Stop(context.Background())) })
	started := 0
	for _, r := range results {
		require.Equal(t, bootstrap.SourcePrivate, r.Source)
		require.Equal(t, res.URL, r.URL)
		if r.Started {
			started++
		}
	}
	require.Equal(t, 1, started)
	abs, err := filepath.Abs(cfg.DataDir)
	require.NoError(t, err)
	require.Equal(t, abs, res.DataDir)
	require.Contains(t, res.URL, "127.0.0.1:")
	require.Contains(t, res.URL, "/crmhub?")

	var db, listen, fsync string
	query(t, bundle.ctx, res.URL, "SELECT current_database(), current_setting('listen_addresses'), current_setting('fsync')", &db, &listen, &fsync)
	require.Equal(t, "crmhub", db)
	require.Equal(t, "127.0.0.1", listen)
	require.Equal(t, "off", fsync)

	fi, err := os.Stat(res.DataDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		require.NoError(t, err)
		require.Equal(t, pg.Uid, strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10))
	}

	t.Run("ReusesRunningCluster", func(t *testing.T) {
		again, err := bootstrap.Ensure(bundle.ctx, bundle.log, cfg)
		require.NoError(t, err)
		require.False(t, again.Started)
		require.Equal(t, res.URL, again.URL)
	})

	t.Run("EnvURLWins", func(t *testing.T) {
		envCfg := cfg
		envCfg.DatabaseURL = res.URL
		envCfg.DataDir = "/nonexistent/must-not-be-touched"
		got, err := bootstrap.Ensure(bundle.ctx, bundle.log, envCfg)
		require.NoError(t, err)
		require.Equal(t, bootstrap.SourceEnv, got.Source)
		require.Equal(t, res.URL, got.URL)
		require.NoError(t, got.Stop(bundle.ctx)) // A no-op: not ours to stop.
		query(t, bundle.ctx, res.URL, "SELECT current_database()", &db)
	})

	t.Run("RestartsStoppedClusterOnSamePort", func(t *testing.T) {
		require.NoError(t, res.Stop(bundle.ctx))
		_, err := pgx.Connect(bundle.ctx, res.URL)
		require.Error(t, err)

		again, err := bootstrap.Ensure(bundle.ctx, bundle.log, cfg)
		require.NoError(t, err)
		require.True(t, again.Started)
		require.Equal(t, res.URL, again.URL)
		query(t, bundle.ctx, again.URL, "SELECT current_database()", &db)
		require.Equal(t, "crmhub", db)
	})
}

func TestEnsurePrivateUnreachableDataDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the cluster as another user who may not reach the data directory")
	}
	bundle := setup(t)
	// t.TempDir() sits under a root-owned 0700 directory that the postgres
	// user cannot enter, so the cluster has to live elsewhere.
	cfg := bootstrap.Config{
		ProbeAddr:    noProbe,
		DataDir:      filepath.Join(t.TempDir(), "postgres"),
		Database:     "other",
		Fast:         true,
		StartTimeout: 20 * time.Second,
	}
	res, err := bootstrap.Ensure(bundle.ctx, bundle.log, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, res.Stop(context.Background()))
		require.NoError(t, os.RemoveAll(res.DataDir))
		os.Remove(filepath.Dir(res.DataDir)) // Shared with other runs; only if empty.
	})
	pg, err := user.Lookup("postgres")
	require.NoError(t, err)
	require.True(t, res.Started)
	require.Equal(t, filepath.Join(pg.HomeDir, "crmhub"), filepath.Dir(res.DataDir))

	var db string
	query(t, bundle.ctx, res.URL, "SELECT current_database()", &db)
	require.Equal(t, "other", db)
}

func TestEnsureLocal(t *testing.T) {
	t.Parallel()
	bundle := setup(t)
	server := "postgres://postgres@" + bootstrap.ProbeAddrDefault + "/postgres?sslmode=disable"
	if conn, err := pgx.Connect(bundle.ctx, server); err != nil {
		t.Skipf("no PostgreSQL that trusts user postgres at %s: %v", bootstrap.ProbeAddrDefault, err)
	} else {
		conn.Close(bundle.ctx)
	}

	name := fmt.Sprintf("crmhub_bootstrap_test_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), server)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		require.NoError(t, err)
	})
	cfg := bootstrap.Config{Database: name, DataDir: "/nonexistent/must-not-be-touched"}

	// Several processes creating the same database at once must all succeed.
	const n = 4
	urls := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var res *bootstrap.Result
			res, errs[i] = bootstrap.Ensure(bundle.ctx, bundle.log, cfg)
			if errs[i] == nil {
				require.Equal(t, bootstrap.SourceLocal, res.Source)
				urls[i] = res.URL
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, "postgres://postgres@127.0.0.1:5432/"+name+"?sslmode=disable", urls[i])
	}
	var db string
	query(t, bundle.ctx, urls[0], "SELECT current_database()", &db)
	require.Equal(t, name, db)

	url, err := bootstrap.URL(bundle.ctx, bundle.log, cfg)
	require.NoError(t, err)
	require.Equal(t, urls[0], url)
}

func TestEnsureErrors(t *testing.T) {
	t.Parallel()

	t.Run("UnreachableDatabaseURL", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bootstrap.Ensure(bundle.ctx, bundle.log, bootstrap.Config{
			DatabaseURL:  "postgres://postgres:secret@127.0.0.1:1/x?sslmode=disable",
			StartTimeout: 300 * time.Millisecond,
		})
		require.ErrorContains(t, err, "DATABASE_URL postgres://postgres:xxxxx@127.0.0.1:1/x")
		require.NotContains(t, err.Error(), "secret")
	})

	t.Run("BinDirWithoutPostgres", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bootstrap.Ensure(bundle.ctx, bundle.log, bootstrap.Config{
			ProbeAddr: noProbe,
			DataDir:   filepath.Join(t.TempDir(), "postgres"),
			BinDir:    t.TempDir(),
		})
		require.ErrorContains(t, err, "no initdb")
	})

	t.Run("BadPort", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bootstrap.Ensure(bundle.ctx, bundle.log, bootstrap.Config{Port: 70000})
		require.ErrorContains(t, err, "out of range")
	})
}

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	cfg := bootstrap.Config{}.WithDefaults()
	require.Equal(t, bootstrap.DataDirDefault, cfg.DataDir)
	require.Equal(t, bootstrap.DatabaseDefault, cfg.Database)
	require.Equal(t, bootstrap.ProbeAddrDefault, cfg.ProbeAddr)
	require.Equal(t, bootstrap.StartTimeoutDefault, cfg.StartTimeout)
	require.NotNil(t, cfg.Stdout)

	cfg = bootstrap.Config{DataDir: "x", Port: 5555}.WithDefaults()
	require.Equal(t, "x", cfg.DataDir)
	require.Equal(t, 5555, cfg.Port)
}
