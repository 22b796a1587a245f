package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/db"
	"github.com/wedsync/crmhub/db/dbtest"
)

// TestClientListPlansOnce: on one connection, PostgreSQL plans an
// unfiltered page once and reuses the plan (a generic plan, after its five
// custom ones), from the first page and from a cursor.
// pg_prepared_statements counts both kinds per statement.
func TestClientListPlansOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	q := db.New(conn)
	org, err := q.OrganizationCreate(ctx, &db.OrganizationCreateParams{Slug: "plans", Name: "Plans"})
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `WITH i AS (INSERT INTO integrations (org_id, provider, name) VALUES ($1, 'CSV', 'Seed') RETURNING id)
		INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, email, email_normalized, created_at, updated_at)
		SELECT $1, i.id, 'p' || g, 'Ava', 'Nguyen' || g, 'p' || g || '@example.com', 'p' || g || '@example.com', now(), now()
		FROM i, generate_series(1, 20000) g`, org.ID)
	require.NoError(t, err)
	// Enough rows that a limit PostgreSQL cannot see (it assumes a tenth
	// of the rows) would make a generic plan look dear.
	_, err = conn.Exec(ctx, "ANALYZE clients")
	require.NoError(t, err)

	plans := func() (generic, custom int64) {
		t.Helper()
		err := conn.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
			FROM pg_prepared_statements WHERE statement LIKE 'SELECT id, org_id%FROM clients WHERE%'`).Scan(&generic, &custom)
		require.NoError(t, err)
		return generic, custom
	}
	for _, after := range []*db.ClientCursor{nil, {ID: 100}} {
		for range 8 {
			rows, res, err := q.ClientList(ctx, &db.ClientListParams{OrgID: org.ID, Order: db.ClientOrderID, Limit: 50, After: after})
			require.NoError(t, err)
			require.Len(t, rows, 50)
			require.True(t, res.HasNext)
		}
	}
	generic, custom := plans()
	require.Equal(t, int64(16), generic+custom, "two statements, eight pages each")
	require.Equal(t, int64(6), generic, "after five custom plans each, PostgreSQL reuses a generic one")

}
