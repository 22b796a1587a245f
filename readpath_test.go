package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/db"
)

// seedClients inserts n clients of one integration in one statement:
// names, dates (one in seven without), stages and timestamps with many ties,
// so every order needs its id tie-break. External ids start at from.
func seedClients(t testing.TB, pool *pgxpool.Pool, orgID, integrationID int64, from, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, partner_first_name,
			partner_last_name, email, email_normalized, event_date, venue, stage, created_at, updated_at)
		SELECT $1, $2, 'x' || g,
			(ARRAY['Emma','Olivia','Ava','Mia','Noah','Liam'])[1 + g % 6],
			(ARRAY['smith','Clarke','brown','Nguyen','okafor','Garcia','Rossi','Kowalski'])[1 + g % 8],
			(ARRAY['James','Lucas','Sofia','Chloe'])[1 + g % 4],
			(ARRAY['Hart','Bell','Moreau'])[1 + g % 3],
			'guest' || g || '@example.com', 'guest' || g || '@example.com',
			CASE WHEN g % 7 = 0 THEN NULL ELSE date '2026-05-01' + (g % 180) END,
			(ARRAY['The Old Barn','Lakeside Hall','St Mary''s','Rosewood Manor'])[1 + g % 4],
			(ARRAY['LEAD','BOOKED','FULFILLED','COMPLETED','LOST'])[1 + g % 5],
			timestamptz '2026-01-01' + (g / 10) * interval '1 second',
			timestamptz '2026-02-01' + (g % 997) * interval '1 millisecond'
		FROM generate_series($3::int, $3::int + $4::int - 1) g`, orgID, integrationID, from, n)
	require.NoError(t, err)
}

// insertIntegration adds an integration straight to the database.
func insertIntegration(t testing.TB, pool *pgxpool.Pool, orgID int64, name string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		"INSERT INTO integrations (org_id, provider, name) VALUES ($1, 'CSV', $2) RETURNING id", orgID, name).Scan(&id))
	return id
}

// httpGQL sends a GraphQL request with extra headers and returns the
// response and its headers.
func (b *testBundle) httpGQL(t *testing.T, token, query string, vars map[string]any, headers map[string]string) (*gqlResponse, http.Header) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return doGQL(t, req)
}

func doGQL(t *testing.T, req *http.Request) (*gqlResponse, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, out), "response is not JSON: %s", raw)
	return out, resp.Header
}

func TestPageSizeRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const q = `query($first: Int, $last: Int, $network: NetworkQuality) {
		organization { clients(first: $first, last: $last, network: $network) { pageSize network } } }`
	cases := []struct {
		name    string
		vars    map[string]any
		headers map[string]string
		size    int
		network string
		vary    bool
	}{
		{"FirstExplicit", map[string]any{"first": 7}, nil, 7, "MEDIUM", false},
		{"FirstClampedHigh", map[string]any{"first": 5000}, nil, 100, "MEDIUM", false},
		{"FirstClampedLow", map[string]any{"first": 0}, nil, 1, "MEDIUM", false},
		{"LastClamped", map[string]any{"last": 500}, nil, 100, "MEDIUM", false},
		{"FirstBeatsNetworkAndHints", map[string]any{"first": 3, "network": "FAST"}, map[string]string{"Save-Data": "on"}, 3, "FAST", false},
		{"NetworkSlow", map[string]any{"network": "SLOW"}, nil, 10, "SLOW", false},
		{"NetworkMedium", map[string]any{"network": "MEDIUM"}, nil, 50, "MEDIUM", false},
		{"NetworkFast", map[string]any{"network": "FAST"}, nil, 100, "FAST", false},
		{"NetworkBeatsHints", map[string]any{"network": "FAST"}, map[string]string{"ECT": "2g"}, 100, "FAST", false},
		{"HintSaveData", nil, map[string]string{"Save-Data": "on", "ECT": "4g"}, 10, "SLOW", true},
		{"HintECTSlow2g", nil, map[string]string{"ECT": "slow-2g"}, 10, "SLOW", true},
		{"HintECT3g", nil, map[string]string{"ECT": "3g"}, 10, "SLOW", true},
		{"HintDownlinkLow", nil, map[string]string{"ECT": "4g", "Downlink": "2.5"}, 50, "MEDIUM", true},
		{"HintRTTHigh", nil, map[string]string{"ECT": "4g", "RTT": "450"}, 50, "MEDIUM", true},
		{"HintFast", nil, map[string]string{"ECT": "4g", "Downlink": "30", "RTT": "50"}, 100, "FAST", true},
		{"Default", nil, nil, 50, "MEDIUM", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, h := b.httpGQL(t, b.ownerA, q, tc.vars, tc.headers)
			require.Empty(t, r.Errors)
			require.EqualValues(t, tc.size, dig(r.Data, "organization", "clients", "pageSize"))
			require.Equal(t, tc.network, dig(r.Data, "organization", "clients", "network"))
			require.Equal(t, "ECT, Downlink, RTT, Save-Data", h.Get("Accept-CH"))
			// Vary names the hints exactly when the answer depended on them
			// (or on their absence); other responses stay shareable.
			require.Equal(t, tc.vary, slices.Contains(h.Values("Vary"), "ECT, Downlink, RTT, Save-Data"), "Vary: %v", h.Values("Vary"))
		})
	}
}

// walkClient is what a walk records of each client.
type walkClient struct {
	ID        string
	LastName  string
	EventDate *string
	UpdatedAt string
	CreatedAt string
}

const walkQuery = `query($first: Int, $after: String, $last: Int, $before: String, $orderBy: ClientOrder, $filter: ClientFilter) {
  organization { clients(first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy, filter: $filter) {
    edges { cursor node { id lastName eventDate updatedAt createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`

// walk pages through the whole list forwards (or backwards) and returns
// the clients in list order; between pages it calls between.
func walk(t *testing.T, b *testBundle, orderBy map[string]any, backward bool, size int, between func()) []walkClient {
	t.Helper()
	var out []walkClient
	vars := map[string]any{"orderBy": orderBy}
	if backward {
		vars["last"] = size
	} else {
		vars["first"] = size
	}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000, "walk does not end")
		data := b.mustGQL(t, b.ownerA, walkQuery, vars)
		conn := dig(data, "organization", "clients").(map[string]any)
		var page []walkClient
		for _, e := range conn["edges"].([]any) {
			n := e.(map[string]any)["node"].(map[string]any)
			c := walkClient{ID: n["id"].(string), LastName: n["lastName"].(string),
				UpdatedAt: n["updatedAt"].(string), CreatedAt: n["createdAt"].(string)}
			if d, ok := n["eventDate"].(string); ok {
				c.EventDate = &d
			}
			page = append(page, c)
		}
		info := conn["pageInfo"].(map[string]any)
		if backward {
			out = append(page, out...)
			if !info["hasPreviousPage"].(bool) {
				return out
			}
			vars["before"] = info["startCursor"]
		} else {
			out = append(out, page...)
			if !info["hasNextPage"].(bool) {
				return out
			}
			vars["after"] = info["endCursor"]
		}
		if between != nil {
			between()
		}
	}
}

// clientLess is the list order of a field and direction, ties by id.
func clientLess(field string, desc bool) func(a, b walkClient) int {
	return func(a, b walkClient) int {
		_, ida, _ := parseGID(a.ID)
		_, idb, _ := parseGID(b.ID)
		var c int
		switch field {
		case "EVENT_DATE":
			// Clients without a date come last in both directions.
			switch {
			case a.EventDate == nil && b.EventDate == nil:
			case a.EventDate == nil:
				return 1
			case b.EventDate == nil:
				return -1
			default:
				c = strings.Compare(*a.EventDate, *b.EventDate)
			}
		case "LAST_NAME":
			c = strings.Compare(strings.ToLower(a.LastName), strings.ToLower(b.LastName))
		case "UPDATED_AT", "CREATED_AT":
			ta, tb := a.UpdatedAt, b.UpdatedAt
			if field == "CREATED_AT" {
				ta, tb = a.CreatedAt, b.CreatedAt
			}
			pa, _ := time.Parse(time.RFC3339Nano, ta)
			pb, _ := time.Parse(time.RFC3339Nano, tb)
			c = pa.Compare(pb)
		}
		if c == 0 {
			c = int(ida - idb)
			if ida > idb {
				c = 1
			} else if ida < idb {
				c = -1
			}
		}
		if desc {
			c = -c
		}
		return c
	}
}

func TestClientKeysetWalk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 10000
	integ := insertIntegration(t, b.pool, b.orgA.ID, "Seed")
	seedClients(t, b.pool, b.orgA.ID, integ, 1, n)

	orders := []map[string]any{nil}
	for _, f := range []string{"EVENT_DATE", "LAST_NAME", "UPDATED_AT", "CREATED_AT"} {
		for _, d := range []string{"ASC", "DESC"} {
			orders = append(orders, map[string]any{"field": f, "direction": d})
		}
	}
	for _, o := range orders {
		name := "ID"
		field, desc := "", false
		if o != nil {
			field, desc = o["field"].(string), o["direction"] == "DESC"
			name = field + "_" + o["direction"].(string)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fwd := walk(t, b, o, false, 100, nil)
			require.Len(t, fwd, n)
			seen := map[string]bool{}
			for _, c := range fwd {
				require.False(t, seen[c.ID], "client %s twice", c.ID)
				seen[c.ID] = true
			}
			if field != "" {
				require.True(t, slices.IsSortedFunc(fwd, clientLess(field, desc)), "forward walk out of order")
			} else {
				require.True(t, slices.IsSortedFunc(fwd, clientLess("", false)), "forward walk out of order")
			}
			back := walk(t, b, o, true, 100, nil)
			require.Equal(t, fwd, back, "backward walk differs from forward walk")
		})
	}
	t.Run("CursorOfAnotherOrder", func(t *testing.T) {
		t.Parallel()
		data := b.mustGQL(t, b.ownerA, walkQuery, map[string]any{"first": 2, "orderBy": map[string]any{"field": "LAST_NAME"}})
		cur := dig(data, "organization", "clients", "pageInfo", "endCursor")
		for _, o := range []map[string]any{nil, {"field": "LAST_NAME", "direction": "DESC"}, {"field": "EVENT_DATE"}} {
			r := b.gql(t, b.ownerA, walkQuery, map[string]any{"first": 2, "after": cur, "orderBy": o})
			require.Equal(t, "BAD_USER_INPUT", r.code(), "order %v", o)
		}
		r := b.gql(t, b.ownerA, walkQuery, map[string]any{"first": 2, "after": "bm9wZQ"})
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})
}

func TestClientKeysetConcurrentInserts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 2000
	integ := insertIntegration(t, b.pool, b.orgA.ID, "Seed")
	seedClients(t, b.pool, b.orgA.ID, integ, 1, n)
	before := map[string]bool{}
	rows, err := b.pool.Query(context.Background(), "SELECT id FROM clients WHERE org_id = $1", b.orgA.ID)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	for _, id := range ids {
		before[globalIDFor("Client", id)] = true
	}
	next := n + 1
	for _, o := range []map[string]any{{"field": "EVENT_DATE", "direction": "DESC"}, {"field": "LAST_NAME"}} {
		for _, backward := range []bool{false, true} {
			// Between pages, clients arrive everywhere in the order: before
			// and after the cursor, with and without event dates.
			insert := func() {
				seedClients(t, b.pool, b.orgA.ID, integ, next, 25)
				next += 25
			}
			got := walk(t, b, o, backward, 50, insert)
			seen := map[string]bool{}
			old := 0
			for _, c := range got {
				require.False(t, seen[c.ID], "client %s twice", c.ID)
				seen[c.ID] = true
				if before[c.ID] {
					old++
				}
			}
			require.Equal(t, n, old, "every client that existed before the walk, exactly once (%v backward=%v)", o, backward)
		}
	}
}

func TestClientFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	i1 := insertIntegration(t, b.pool, b.orgA.ID, "One")
	i2 := insertIntegration(t, b.pool, b.orgA.ID, "Two")
	seedClients(t, b.pool, b.orgA.ID, i1, 1, 600)
	seedClients(t, b.pool, b.orgA.ID, i2, 601, 400)
	_, err := b.pool.Exec(context.Background(), "UPDATE clients SET deleted_at = now() WHERE external_id IN ('x1', 'x2', 'x3')")
	require.NoError(t, err)
	count := func(filter map[string]any) int {
		t.Helper()
		data := b.mustGQL(t, b.ownerA, `query($f: ClientFilter) { organization { clients(filter: $f, first: 100) { totalCount nodes { id } } } }`,
			map[string]any{"f": filter})
		return int(dig(data, "organization", "clients", "totalCount").(float64))
	}
	var want int
	sqlCount := func(where string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM clients WHERE org_id = $1 AND "+where,
			append([]any{b.orgA.ID}, args...)...).Scan(&n))
		return n
	}
	t.Run("None", func(t *testing.T) { require.Equal(t, 997, count(nil)) })
	t.Run("IncludeDeleted", func(t *testing.T) { require.Equal(t, 1000, count(map[string]any{"includeDeleted": true})) })
	t.Run("SearchLastName", func(t *testing.T) {
		want = sqlCount("deleted_at IS NULL AND (lower(last_name) LIKE '%clar%')")
		require.Equal(t, want, count(map[string]any{"search": "CLAR"}))
	})
	t.Run("SearchPartnerEmailVenue", func(t *testing.T) {
		require.Equal(t, sqlCount("deleted_at IS NULL AND partner_last_name = 'Moreau'"), count(map[string]any{"search": "moreau"}))
		require.Equal(t, 1, count(map[string]any{"search": "guest777@"}))
		require.Equal(t, sqlCount("deleted_at IS NULL AND venue = 'St Mary''s'"), count(map[string]any{"search": "st mary's"}))
	})
	t.Run("SearchWildcardsAreLiteral", func(t *testing.T) { require.Equal(t, 0, count(map[string]any{"search": "%%%"})) })
	t.Run("SearchTooShort", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `{ organization { clients(filter: {search: "ab"}) { pageSize } } }`, nil)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})
	t.Run("Stages", func(t *testing.T) {
		require.Equal(t, sqlCount("deleted_at IS NULL AND stage IN ('BOOKED', 'LOST')"), count(map[string]any{"stages": []string{"BOOKED", "LOST"}}))
	})
	t.Run("EventDates", func(t *testing.T) {
		require.Equal(t, sqlCount("deleted_at IS NULL AND event_date BETWEEN '2026-06-01' AND '2026-06-30'"),
			count(map[string]any{"eventDateFrom": "2026-06-01", "eventDateTo": "2026-06-30"}))
	})
	t.Run("Integrations", func(t *testing.T) {
		require.Equal(t, 400, count(map[string]any{"integrationIds": []string{globalIDFor("Integration", i2)}}))
	})
	t.Run("Combined", func(t *testing.T) {
		want := sqlCount("deleted_at IS NULL AND integration_id = $2 AND stage = 'BOOKED' AND lower(venue) LIKE '%barn%'", i1)
		require.Equal(t, want, count(map[string]any{"integrationIds": []string{globalIDFor("Integration", i1)}, "stages": []string{"BOOKED"}, "search": "barn"}))
	})
	t.Run("SearchWalk", func(t *testing.T) {
		got := map[string]bool{}
		vars := map[string]any{"first": 7, "filter": map[string]any{"search": "nguyen"}, "orderBy": map[string]any{"field": "EVENT_DATE", "direction": "DESC"}}
		for {
			data := b.mustGQL(t, b.ownerA, walkQuery, vars)
			for _, e := range dig(data, "organization", "clients", "edges").([]any) {
				got[dig(e, "node", "id").(string)] = true
			}
			if !dig(data, "organization", "clients", "pageInfo", "hasNextPage").(bool) {
				break
			}
			vars["after"] = dig(data, "organization", "clients", "pageInfo", "endCursor")
		}
		require.Len(t, got, sqlCount("deleted_at IS NULL AND last_name = 'Nguyen'"))
	})
}

// counter counts the queries a pool runs.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestQueryCount is not parallel: the dataloaders batch what arrives within
// a few milliseconds, and the count must not depend on a busy machine.
func TestQueryCount(t *testing.T) {
	queries := &counter{}
	b, _ := setupAppWith(t, false, "", func(cfg *Config, o *serveOptions) {
		cfg.CacheOff = true
		o.queryTracer = queries
	})
	ctx := context.Background()
	// Ten integrations, each with a last run, a hundred clients spread over
	// them.
	for i := range 10 {
		integ := insertIntegration(t, b.pool, b.orgA.ID, fmt.Sprintf("CRM %d", i))
		seedClients(t, b.pool, b.orgA.ID, integ, i*10+1, 10)
		_, err := b.pool.Exec(ctx, `WITH r AS (INSERT INTO import_runs (org_id, integration_id, mode, state) VALUES ($1, $2, 'FULL', 'SUCCEEDED') RETURNING id)
			UPDATE integrations SET last_run_id = (SELECT id FROM r) WHERE id = $2`, b.orgA.ID, integ)
		require.NoError(t, err)
	}
	const q = `query($n: Int) { organization { clients(first: $n) { nodes { id displayName
		integration { id name lastRun { id state integration { id name } } } } } } }`
	b.mustGQL(t, b.ownerA, `{ viewer { role } }`, nil) // the token's principal is cached now
	measure := func(n int) int64 {
		start := queries.n.Load()
		data := b.mustGQL(t, b.ownerA, q, map[string]any{"n": n})
		require.Len(t, dig(data, "organization", "clients", "nodes"), n)
		return queries.n.Load() - start
	}
	one, hundred := measure(1), measure(100)
	t.Logf("queries: 1 client %d, 100 clients %d", one, hundred)
	// organization, client page, integrations, runs (run → integration is
	// already loaded): the same for one client and for a hundred.
	require.LessOrEqual(t, hundred, int64(4))
	require.Equal(t, one, hundred)
}

// metricValue reads one sample of crmhub_cache_lookups_total.
func metricValue(t *testing.T, b *testBundle, cache, result string) int {
	t.Helper()
	return metricSample(t, b, fmt.Sprintf(`crmhub_cache_lookups_total{cache=%q,result=%q}`, cache, result))
}

// metricSample reads the sample of /metrics named name{labels} (0 when it
// is not there).
func metricSample(t *testing.T, b *testBundle, sample string) int {
	t.Helper()
	resp, err := http.Get(b.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	want := sample + " "
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			var n int
			_, _ = fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

// bumpAndNotify changes the organization's data as an import page does:
// the write, the version bump and the notification in one transaction. It
// returns the new version.
func bumpAndNotify(t *testing.T, pool *pgxpool.Pool, orgID int64, write string, args ...any) int64 {
	t.Helper()
	var v int64
	err := db.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), write, args...); err != nil {
			return err
		}
		if err := tx.QueryRow(context.Background(), "UPDATE organizations SET data_version = data_version + 1 WHERE id = $1 RETURNING data_version", orgID).Scan(&v); err != nil {
			return err
		}
		_, err := tx.Exec(context.Background(), "SELECT pg_notify($1, $2)", db.DataVersionChannel, fmt.Sprintf("%d:%d", orgID, v))
		return err
	})
	require.NoError(t, err)
	return v
}

// waitVersion waits until node a has heard of version v of orgID, and
// returns how long the notification took.
func waitVersion(t *testing.T, a *app, orgID, v int64) time.Duration {
	t.Helper()
	start := time.Now()
	require.Eventually(t, func() bool {
		got, ok, err := a.versions.Version(context.Background(), orgID)
		return err == nil && ok && got >= v
	}, time.Second, 200*time.Microsecond)
	return time.Since(start)
}

func TestReadCache(t *testing.T) {
	t.Parallel()
	b, a := setupApp(t, false)
	integ := insertIntegration(t, b.pool, b.orgA.ID, "Seed")
	seedClients(t, b.pool, b.orgA.ID, integ, 1, 30)
	require.Eventually(t, a.versions.Listening, 5*time.Second, 5*time.Millisecond)
	const q = `{ organization { clients(first: 5, orderBy: {field: LAST_NAME}) { nodes { id lastName } } } }`
	names := func() []any {
		data := b.mustGQL(t, b.ownerA, q, nil)
		var out []any
		for _, n := range dig(data, "organization", "clients", "nodes").([]any) {
			out = append(out, dig(n, "lastName"))
		}
		return out
	}
	first := names()
	hits := metricValue(t, b, "response", "hit")
	require.Equal(t, first, names())
	require.Equal(t, hits+1, metricValue(t, b, "response", "hit"), "the second read is a cache hit")
	// The same page with other fields is another answer, but the same page
	// of rows.
	pageHits := metricValue(t, b, "page", "hit")
	b.mustGQL(t, b.ownerA, `{ organization { clients(first: 5, orderBy: {field: LAST_NAME}) { nodes { email } } } }`, nil)
	require.Equal(t, pageHits+1, metricValue(t, b, "page", "hit"), "the page of rows is a cache hit")

	var firstID int64
	_, firstID, _ = parseGID(dig(b.mustGQL(t, b.ownerA, q, nil), "organization", "clients", "nodes").([]any)[0].(map[string]any)["id"].(string))
	clientQ := `query($id: ID!) { node(id: $id) { ... on Client { lastName } } }`
	vars := map[string]any{"id": globalIDFor("Client", firstID)}
	require.Equal(t, first[0], dig(b.mustGQL(t, b.ownerA, clientQ, vars), "node", "lastName"))

	v := bumpAndNotify(t, b.pool, b.orgA.ID, "UPDATE clients SET last_name = 'Aaronson' WHERE id = $1", firstID)
	took := waitVersion(t, a, b.orgA.ID, v)
	t.Logf("notification arrived after %v", took)
	got := names()
	require.Equal(t, "Aaronson", got[0], "the read after the commit sees the change")
	require.Equal(t, "Aaronson", dig(b.mustGQL(t, b.ownerA, clientQ, vars), "node", "lastName"))

	// An import page through the real upsert path bumps and notifies too.
	before := metricValue(t, b, "page", "miss")
	v = bumpAndNotify(t, b.pool, b.orgA.ID, "UPDATE clients SET deleted_at = now() WHERE id = $1", firstID)
	waitVersion(t, a, b.orgA.ID, v)
	require.NotEqual(t, "Aaronson", names()[0])
	require.Greater(t, metricValue(t, b, "page", "miss"), before)
}

func TestReadCacheTwoNodes(t *testing.T) {
	t.Parallel()
	bA, nodeA := setupApp(t, false)
	bB, nodeB := setupAppWith(t, false, bA.dbURL, nil)
	integ := createIntegration(t, bA, bA.ownerA, "Tave", "key-1234")
	_, integID, _ := parseGID(integ)
	seedClients(t, bA.pool, bA.orgA.ID, integID, 1, 20)
	for _, a := range []*app{nodeA, nodeB} {
		require.Eventually(t, a.versions.Listening, 5*time.Second, 5*time.Millisecond)
	}
	const q = `{ organization { clients { totalCount nodes { id } } } }`
	nodes := func(b *testBundle) int {
		return len(dig(b.mustGQL(t, bA.ownerA, q, nil), "organization", "clients", "nodes").([]any))
	}
	require.Equal(t, 20, nodes(bB))
	require.Equal(t, 20, nodes(bB)) // cached on B now

	t.Run("ChangeThroughA", func(t *testing.T) {
		// Deleting the integration on node A soft-deletes its clients, bumps
		// the version and notifies.
		var before int64
		require.NoError(t, bA.pool.QueryRow(context.Background(), "SELECT data_version FROM organizations WHERE id = $1", bA.orgA.ID).Scan(&before))
		bA.mustGQL(t, bA.ownerA, `mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedIntegrationId } }`, map[string]any{"id": integ})
		took := waitVersion(t, nodeB, bA.orgA.ID, before+1)
		t.Logf("node B heard of the change after %v", took)
		require.Equal(t, 0, nodes(bB), "node B's next read sees the change")
	})
	t.Run("RevokeOnA", func(t *testing.T) {
		data := bA.mustGQL(t, bA.ownerA, `mutation { createApiToken(input: {name: "phone", role: MEMBER}) { token apiToken { id } } }`, nil)
		token := dig(data, "createApiToken", "token").(string)
		id := dig(data, "createApiToken", "apiToken", "id").(string)
		bB.mustGQL(t, token, `{ viewer { role } }`, nil) // node B caches the principal
		bB.mustGQL(t, token, `{ viewer { role } }`, nil)
		bA.mustGQL(t, bA.ownerA, `mutation($id: ID!) { revokeApiToken(input: {id: $id}) { apiToken { revokedAt } } }`, map[string]any{"id": id})
		start := time.Now()
		for {
			r := bB.gql(t, token, `{ viewer { role } }`, nil)
			if r.code() == "UNAUTHENTICATED" {
				break
			}
			require.Less(t, time.Since(start), time.Second, "node B still accepts the revoked token")
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("node B rejected the revoked token after %v", time.Since(start))
	})
}

func TestAutomaticPersistedQueries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	apq := func(q string) map[string]any {
		sum := sha256.Sum256([]byte(q))
		return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	}
	post := func(body map[string]any) *gqlResponse {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		return b.post(t, b.ownerA, "application/json", raw)
	}
	get := func(params map[string]any) *gqlResponse {
		v := url.Values{}
		for k, p := range params {
			if s, ok := p.(string); ok {
				v.Set(k, s)
				continue
			}
			raw, err := json.Marshal(p)
			require.NoError(t, err)
			v.Set(k, string(raw))
		}
		req, err := http.NewRequest(http.MethodGet, b.url+"/graphql?"+v.Encode(), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.ownerA)
		r, _ := doGQL(t, req)
		return r
	}
	notFound := func(r *gqlResponse) {
		t.Helper()
		require.NotEmpty(t, r.Errors)
		require.Equal(t, "PersistedQueryNotFound", r.Errors[0].Message)
	}

	t.Run("POST", func(t *testing.T) {
		q := `query PostAPQ { viewer { role } }`
		notFound(post(map[string]any{"extensions": apq(q)}))
		r := post(map[string]any{"query": q, "extensions": apq(q)})
		require.Empty(t, r.Errors)
		r = post(map[string]any{"extensions": apq(q)})
		require.Empty(t, r.Errors)
		require.Equal(t, "OWNER", dig(r.Data, "viewer", "role"))
	})
	t.Run("GET", func(t *testing.T) {
		q := `query GetAPQ { organization { clients(network: SLOW) { pageSize } } }`
		notFound(get(map[string]any{"extensions": apq(q)}))
		r := get(map[string]any{"query": q, "extensions": apq(q)})
		require.Empty(t, r.Errors)
		r = get(map[string]any{"extensions": apq(q)})
		require.Empty(t, r.Errors)
		require.EqualValues(t, 10, dig(r.Data, "organization", "clients", "pageSize"))
	})
	t.Run("WrongHash", func(t *testing.T) {
		r := post(map[string]any{"query": `{ viewer { role } }`, "extensions": apq(`{ something else }`)})
		require.NotEmpty(t, r.Errors)
	})
}

// TestResponseCache checks the whole-answer tier: a repeated read of the
// organization's clients, by POST or GET, is answered from it with the same
// bytes, headers and extensions; answers that hold anything the data version does not
// cover (an integration's name), SUPPORT's audited reads and a node that
// cannot know the version never use it; a committed change is seen at once.
func TestResponseCache(t *testing.T) {
	t.Parallel()
	b, a := setupApp(t, false)
	integ := createIntegration(t, b, b.ownerA, "Tave", "key-1234")
	_, integID, _ := parseGID(integ)
	seedClients(t, b.pool, b.orgA.ID, integID, 1, 60)
	require.Eventually(t, a.versions.Listening, 5*time.Second, 5*time.Millisecond)

	send := func(token, query string, vars map[string]any, headers map[string]string) *rawResponse {
		t.Helper()
		body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
		require.NoError(t, err)
		out := b.send(t, token, "application/json", headers, body)
		require.Empty(t, out.Errors)
		require.Equal(t, strconv.Itoa(len(out.Raw)), out.Header.Get("Content-Length"))
		return out
	}
	hits := func() int { return metricValue(t, b, "response", "hit") }
	misses := func() int { return metricValue(t, b, "response", "miss") }

	const page = `query($after: String) { organization { name clients(after: $after, orderBy: {field: LAST_NAME}) {
		pageSize network edges { cursor node { id displayName lastName eventDate stage bookingValue { amountMinor } } }
		pageInfo { endCursor hasNextPage } } } }`

	t.Run("RepeatedReadIsAHit", func(t *testing.T) {
		h0, m0 := hits(), misses()
		first := send(b.ownerA, page, nil, nil)
		require.Equal(t, m0+1, misses())
		second := send(b.ownerA, page, nil, nil)
		require.Equal(t, h0+1, hits(), "the second read is answered from the response cache")
		require.Equal(t, string(first.Raw), string(second.Raw), "the same answer, byte for byte")
		require.NotNil(t, second.Extensions["cost"], "extensions.cost is kept")
		require.EqualValues(t, 50, dig(first.Data, "organization", "clients", "pageSize"))
		// Other variables are another answer.
		after := dig(first.Data, "organization", "clients", "pageInfo", "endCursor")
		next := send(b.ownerA, page, map[string]any{"after": after}, nil)
		require.Len(t, dig(next.Data, "organization", "clients", "edges"), 10)
		// Another role of the same organization has its own entries.
		h := hits()
		send(b.memberA, page, nil, nil)
		require.Equal(t, h, hits())
	})

	t.Run("GET", func(t *testing.T) {
		get := func() []byte {
			req, err := http.NewRequest(http.MethodGet, b.url+"/graphql?query="+url.QueryEscape(`{ organization { clients(first: 2) { nodes { id } } } }`), nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+b.ownerA)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return raw
		}
		first := get()
		h := hits()
		require.Equal(t, string(first), string(get()))
		require.Equal(t, h+1, hits())
	})

	t.Run("HintsKeyTheAnswerAndVaryStays", func(t *testing.T) {
		slow := map[string]string{"ECT": "2g"}
		miss := send(b.ownerA, page, nil, slow)
		h := hits()
		hit := send(b.ownerA, page, nil, slow)
		require.Equal(t, h+1, hits())
		for _, r := range []*rawResponse{miss, hit} {
			require.EqualValues(t, 10, dig(r.Data, "organization", "clients", "pageSize"))
			require.Contains(t, r.Header.Values("Vary"), "ECT, Downlink, RTT, Save-Data")
		}
		fast := send(b.ownerA, page, nil, map[string]string{"ECT": "4g", "Downlink": "20"})
		require.EqualValues(t, 100, dig(fast.Data, "organization", "clients", "pageSize"))
		// An explicit first does not vary with the hints, cached or not.
		for range 2 {
			r := send(b.ownerA, `{ organization { clients(first: 3) { nodes { id } } } }`, nil, slow)
			require.NotContains(t, r.Header.Values("Vary"), "ECT, Downlink, RTT, Save-Data")
		}
	})

	t.Run("CommittedChangeIsSeenAtOnce", func(t *testing.T) {
		send(b.ownerA, page, nil, nil)
		before := send(b.ownerA, page, nil, nil)
		firstEdge := dig(before.Data, "organization", "clients", "edges").([]any)[0]
		_, id, _ := parseGID(dig(firstEdge, "node", "id").(string))
		v := bumpAndNotify(t, b.pool, b.orgA.ID, "UPDATE clients SET last_name = 'Aardvark' WHERE id = (SELECT max(id) FROM clients WHERE org_id = $1)", b.orgA.ID)
		waitVersion(t, a, b.orgA.ID, v)
		after := send(b.ownerA, page, nil, nil)
		got := dig(after.Data, "organization", "clients", "edges").([]any)[0]
		require.Equal(t, "Aardvark", dig(got, "node", "lastName"))
		require.NotEqual(t, id, func() int64 { _, x, _ := parseGID(dig(got, "node", "id").(string)); return x }())
	})

	t.Run("UnversionedFieldsAreNeverCached", func(t *testing.T) {
		const q = `{ organization { clients(first: 2) { nodes { id integration { name } } } } }`
		h := hits()
		send(b.ownerA, q, nil, nil)
		send(b.ownerA, q, nil, nil)
		require.Equal(t, h, hits())
		// Renaming the integration bumps no data version; the next read
		// still has the new name.
		b.mustGQL(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, name: "Tave (studio)"}) { integration { name } } }`,
			map[string]any{"id": integ})
		r := send(b.ownerA, q, nil, nil)
		require.Equal(t, "Tave (studio)", dig(dig(r.Data, "organization", "clients", "nodes").([]any)[0], "integration", "name"))
		// Fragments are followed to what they select.
		const frag = `query { organization { ...O } } fragment O on Organization { integrations { nodes { name } } }`
		send(b.ownerA, frag, nil, nil)
		send(b.ownerA, frag, nil, nil)
		require.Equal(t, h, hits())
		send(b.ownerA, `{ viewer { tokenName } }`, nil, nil)
		send(b.ownerA, `{ viewer { tokenName } }`, nil, nil)
		require.Equal(t, h, hits())
		// An answer that reads nothing is not worth keeping.
		send(b.ownerA, `{ __typename }`, nil, nil)
		send(b.ownerA, `{ __typename }`, nil, nil)
		require.Equal(t, h, hits())
	})

	t.Run("SupportReadsAreAuditedEveryTime", func(t *testing.T) {
		count := func() int {
			var n int
			require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE org_id = $1", b.orgA.ID).Scan(&n))
			return n
		}
		orgA := globalIDFor("Organization", b.orgA.ID)
		const q = `query($id: ID) { organization(id: $id) { clients(first: 5) { nodes { email } } } }`
		n, h := count(), hits()
		send(b.support, q, map[string]any{"id": orgA}, nil)
		send(b.support, q, map[string]any{"id": orgA}, nil)
		require.Equal(t, n+2, count(), "each SUPPORT read is audited")
		require.Equal(t, h, hits())
	})

	t.Run("BypassedWhileTheNodeCannotKnow", func(t *testing.T) {
		send(b.ownerA, page, nil, nil)
		bypass := metricValue(t, b, "response", "bypass")
		// The last subtest: this node's LISTEN connection goes away.
		require.NoError(t, a.hub.Stop(context.Background()))
		h := hits()
		require.Eventually(t, func() bool {
			send(b.ownerA, page, nil, nil)
			return metricValue(t, b, "response", "bypass") > bypass
		}, 5*time.Second, 10*time.Millisecond)
		require.Equal(t, h, hits())
	})
}

// TestResponseCacheByteCap: answers past CRMHUB_CACHE_MAX_ANSWER_BYTES are
// not kept; smaller ones still are.
func TestResponseCacheByteCap(t *testing.T) {
	t.Parallel()
	b, a := setupAppConfig(t, false, func(c *Config, _ *serveOptions) { c.CacheMaxAnswerBytes = 2000 })
	integ := insertIntegration(t, b.pool, b.orgA.ID, "Seed")
	seedClients(t, b.pool, b.orgA.ID, integ, 1, 60)
	require.Eventually(t, a.versions.Listening, 5*time.Second, 5*time.Millisecond)
	hits := func() int { return metricValue(t, b, "response", "hit") }
	for _, tc := range []struct {
		query string
		kept  bool
	}{
		{`{ organization { clients(first: 50) { nodes { id email venue } } } }`, false}, // over 2,000 bytes
		{`{ organization { clients(first: 2) { nodes { id } } } }`, true},
	} {
		b.mustGQL(t, b.ownerA, tc.query, nil)
		h := hits()
		b.mustGQL(t, b.ownerA, tc.query, nil)
		if tc.kept {
			require.Equal(t, h+1, hits(), tc.query)
		} else {
			require.Equal(t, h, hits(), tc.query)
		}
	}
}

// BenchmarkReadPathHandler measures one request through the real handler,
// in process (no network, no load generator): { __typename }, and a page of
// 50 clients from the response cache and with every cache off, rendered in
// one pass and by gqlgen.
//
//	go test -run '^$' -bench BenchmarkReadPathHandler .
func BenchmarkReadPathHandler(b *testing.B) {
	const page = `{ organization { clients(first: 50) { edges { cursor node { id displayName email eventDate venue stage } } pageInfo { endCursor hasNextPage } } } }`
	for _, tc := range []struct {
		name       string
		cacheOff   bool
		gqlgenOnly bool
		query      string
	}{
		{"typename", false, false, `{ __typename }`},
		{"page-cached", false, false, page},
		{"page-uncached", true, false, page},
		// The page rendered by gqlgen instead of resolvers.RenderClientPages.
		{"page-uncached-gqlgen", true, true, page},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bun, a := setupAppConfig(b, false, func(c *Config, o *serveOptions) {
				c.CacheOff = tc.cacheOff
				o.gqlgenOnly = tc.gqlgenOnly
			})
			seedClients(b, bun.pool, bun.orgA.ID, insertIntegration(b, bun.pool, bun.orgA.ID, "Seed"), 1, 100)
			require.Eventually(b, a.versions.Listening, 5*time.Second, 5*time.Millisecond)
			body, err := json.Marshal(map[string]any{"query": tc.query})
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+bun.ownerA)
				w := httptest.NewRecorder()
				a.handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
