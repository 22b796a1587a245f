package main

import (
	"context"
	"encoding/json"

	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wedsync/crmhub/graph"
)

// TestRenderClientPagesSameBytes sends the same requests to two servers on
// one database, one rendering pages of clients in one pass
// (resolvers.RenderClientPages) and one with gqlgen only, and requires the
// same bytes back: every field of Client alone, all of them together,
// fragments, aliases, directives, __typename, paging backward, an empty
// page and a rejected filter. It also requires that each selection it
// expects the one-pass renderer to take was taken by it, so the comparison
// cannot pass by both servers using gqlgen.
func TestRenderClientPagesSameBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast, _ := setupAppConfig(t, false, func(c *Config, _ *serveOptions) { c.CacheOff = true })
	slow, _ := setupAppWith(t, false, fast.dbURL, func(c *Config, o *serveOptions) {
		c.CacheOff = true
		o.gqlgenOnly = true
	})
	integ := insertIntegration(t, fast.pool, fast.orgA.ID, "Seed")
	seedClients(t, fast.pool, fast.orgA.ID, integ, 1, 30)
	// Every nullable column set, a deleted client, and strings JSON must
	// escape.
	_, err := fast.pool.Exec(ctx, `
		INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, maiden_name,
			partner_first_name, partner_last_name, email, email_normalized, phone, event_date, venue, job_type,
			stage, lead_source, booking_value_minor, currency, guest_count, source_created_at, source_updated_at,
			created_at, updated_at, deleted_at)
		VALUES ($1, $2, 'odd-1', E'Zo\u00eb "Q" \\ \n\t\u0001 <b>&amp;', 'O''Brien', 'Nguy\u1ec5n', '', 'Bell',
			'zoe@example.com', 'zoe@example.com', '+44 20 7946 0000', '2027-02-28', E'Ch\u00e2teau \u2764 "Rose"', 'Wedding',
			NULL, 'Instagram', 350000, 'GBP', 120, '2025-03-04 05:06:07.123456+00', '2025-03-05 00:00:00+00',
			'2026-01-01 10:00:00+00', '2026-01-02 11:12:13.5+00', '2026-01-03 00:00:00+00'),
		       ($1, $2, 'odd-2', '', '', '', '', '', '', '', '', NULL, '', '', 'LOST', '', NULL, '', NULL, NULL, NULL,
			'2026-01-01 10:00:00+00', '2026-01-01 10:00:00+00', NULL)`, fast.orgA.ID, integ)
	require.NoError(t, err)

	// Every field of Client, from the schema: a scalar as it is, an object
	// by its __typename.
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	var scalars, all []string
	for _, f := range schema.Types["Client"].Fields {
		if strings.HasPrefix(f.Name, "__") {
			continue
		}
		if schema.Types[f.Type.Name()].Kind == ast.Object {
			all = append(all, f.Name+" { __typename }")
			continue
		}
		scalars = append(scalars, f.Name)
		all = append(all, f.Name)
	}
	require.Greater(t, len(scalars), 15)

	const page = `clients(first: 40, filter: {includeDeleted: true})`
	const connFields = `pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename } totalCount pageSize network __typename`
	type tcase struct {
		name, query string
		vars        map[string]any
		crmhub      bool // the one-pass renderer must take it
	}
	var cases []tcase
	for _, f := range all {
		cases = append(cases, tcase{name: "field " + f, query: `{ organization { ` + page + ` { edges { cursor node { ` + f + ` } } } } }`,
			crmhub: !strings.Contains(f, "{")})
	}
	sel := strings.Join(scalars, " ")
	cases = append(cases,
		tcase{name: "every scalar", crmhub: true,
			query: `{ organization { ` + page + ` { edges { cursor node { ` + sel + ` } } nodes { ` + sel + ` } ` + connFields + ` } } }`},
		tcase{name: "every field",
			query: `{ organization { ` + page + ` { edges { cursor node { ` + strings.Join(all, " ") + ` } } ` + connFields + ` } } }`},
		tcase{name: "fragments, aliases and directives", crmhub: true,
			vars: map[string]any{"yes": true, "no": false},
			query: `query($yes: Boolean!, $no: Boolean!) { organization { name c: clients(first: 7, network: SLOW) {
				...Conn
				e: edges { c: cursor @include(if: $no) n: node { ... on Node { id } ...Names venue @skip(if: $yes) email @skip(if: $no) } __typename
					n: node { stage } }
				p: pageInfo { endCursor e: endCursor }
			} } }
			fragment Conn on ClientConnection { pageSize network total: totalCount }
			fragment Names on Client { firstName lastName n: displayName id }`},
		tcase{name: "backward, ordered", crmhub: true,
			query: `{ organization { clients(last: 5, orderBy: {field: LAST_NAME, direction: DESC}) { edges { cursor node { id lastName } } ` + connFields + ` } } }`},
		tcase{name: "empty page", crmhub: true,
			query: `{ organization { clients(first: 5, filter: {search: "nobody-by-this-name"}) { edges { cursor node { id } } nodes { id } ` + connFields + ` } } }`},
		tcase{name: "two edges selections",
			query: `{ organization { clients(first: 3) { a: edges { cursor } b: edges { node { id } } } } }`},
		tcase{name: "two node selections",
			query: `{ organization { clients(first: 3) { edges { a: node { id } b: node { email } } } } }`},
		tcase{name: "rejected filter",
			query: `{ organization { clients(first: 3, filter: {search: "ab"}) { edges { cursor } } } }`},
	)

	const rendered = `crmhub_client_pages_rendered_total{renderer="crmhub"}`
	for _, tc := range cases {
		body, err := json.Marshal(map[string]any{"query": tc.query, "variables": tc.vars})
		require.NoError(t, err)
		before := metricSample(t, fast, rendered)
		got := fast.send(t, fast.ownerA, "application/json", nil, body).Raw
		want := slow.send(t, fast.ownerA, "application/json", nil, body).Raw
		require.Equal(t, string(want), string(got), "%s: the one-pass renderer differs from gqlgen", tc.name)
		took := metricSample(t, fast, rendered) - before
		if tc.crmhub {
			require.Equal(t, 1, took, "%s: not rendered in one pass: %s", tc.name, got)
		} else {
			require.Zero(t, took, "%s: rendered in one pass", tc.name)
		}
	}
	require.Zero(t, metricSample(t, slow, rendered), "the gqlgen-only server rendered a page itself")
	// The bytes compared were pages, not errors.
	var every struct {
		Data struct {
			Organization struct {
				Clients struct {
					Nodes []map[string]any `json:"nodes"`
				} `json:"clients"`
			} `json:"organization"`
		} `json:"data"`
	}
	body, _ := json.Marshal(map[string]any{"query": cases[len(all)].query})
	require.NoError(t, json.Unmarshal(fast.send(t, fast.ownerA, "application/json", nil, body).Raw, &every))
	require.Len(t, every.Data.Organization.Clients.Nodes, 32)
}
