package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/db"
)

const createTave = `mutation($name: String!, $key: String) {
  createIntegration(input: {provider: TAVE, name: $name, credentials: {apiKey: $key}}) {
    integration { id name provider credentialsSet credentialHint status }
  }
}`

func createIntegration(t *testing.T, b *testBundle, token, name, key string) string {
	t.Helper()
	data := b.mustGQL(t, token, createTave, map[string]any{"name": name, "key": key})
	return dig(data, "createIntegration", "integration", "id").(string)
}

// insertClient puts a client straight into the database: the import
// pipeline is not what these tests are about.
func insertClient(t *testing.T, b *testBundle, orgID int64, integrationGID string, externalID string) int64 {
	t.Helper()
	_, intID, err := parseGID(integrationGID)
	require.NoError(t, err)
	var id int64
	err = b.pool.QueryRow(context.Background(), `
		INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, email, email_normalized)
		VALUES ($1, $2, $3, 'Emma', 'Clarke', 'emma@example.com', 'emma@example.com') RETURNING id`,
		orgID, intID, externalID).Scan(&id)
	require.NoError(t, err)
	return id
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("NoToken", func(t *testing.T) {
		r := b.gql(t, "", `{ viewer { role } }`, nil)
		require.Equal(t, "UNAUTHENTICATED", r.code())
		require.Nil(t, r.Data["viewer"])
	})
	t.Run("UnknownToken", func(t *testing.T) {
		r := b.gql(t, "chub_notarealtoken", `{ viewer { role } }`, nil)
		require.Equal(t, "UNAUTHENTICATED", r.code())
	})
	t.Run("NotBearer", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, b.url+"/graphql", strings.NewReader(`{"query":"{ viewer { role } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Basic "+b.ownerA)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		require.Contains(t, buf.String(), `"UNAUTHENTICATED"`)
	})
	t.Run("Viewer", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `{ viewer { role tokenName organization { name slug } } }`, nil)
		require.Equal(t, "OWNER", dig(data, "viewer", "role"))
		require.Equal(t, "Studio A", dig(data, "viewer", "organization", "name"))

		data = b.mustGQL(t, b.support, `{ viewer { role organization { name } } }`, nil)
		require.Equal(t, "SUPPORT", dig(data, "viewer", "role"))
		require.Nil(t, dig(data, "viewer", "organization"))
	})
	t.Run("RevokedToken", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `mutation { createApiToken(input: {name: "phone", role: MEMBER}) { token apiToken { id role prefix } } }`, nil)
		token := dig(data, "createApiToken", "token").(string)
		id := dig(data, "createApiToken", "apiToken", "id").(string)
		require.True(t, strings.HasPrefix(token, dig(data, "createApiToken", "apiToken", "prefix").(string)))

		data = b.mustGQL(t, token, `{ viewer { role } }`, nil)
		require.Equal(t, "MEMBER", dig(data, "viewer", "role"))

		b.mustGQL(t, b.ownerA, `mutation($id: ID!) { revokeApiToken(input: {id: $id}) { apiToken { revokedAt } } }`, map[string]any{"id": id})
		r := b.gql(t, token, `{ viewer { role } }`, nil)
		require.Equal(t, "UNAUTHENTICATED", r.code())
	})
	t.Run("OtherOrgCannotRevoke", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `mutation { createApiToken(input: {name: "x", role: MEMBER}) { token apiToken { id } } }`, nil)
		id := dig(data, "createApiToken", "apiToken", "id").(string)
		token := dig(data, "createApiToken", "token").(string)
		r := b.gql(t, b.ownerB, `mutation($id: ID!) { revokeApiToken(input: {id: $id}) { apiToken { id } } }`, map[string]any{"id": id})
		require.Equal(t, "NOT_FOUND", r.code())
		b.mustGQL(t, token, `{ viewer { role } }`, nil)
	})
	t.Run("MemberCannotCreateTokens", func(t *testing.T) {
		r := b.gql(t, b.memberA, `mutation { createApiToken(input: {name: "x", role: OWNER}) { token } }`, nil)
		require.Equal(t, "FORBIDDEN", r.code())
	})
	t.Run("NoSupportTokensThroughTheAPI", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `mutation { createApiToken(input: {name: "x", role: SUPPORT}) { token } }`, nil)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	intB := createIntegration(t, b, b.ownerB, "B's Tave", "secret-key-of-b-1234")
	clientB := insertClient(t, b, b.orgB.ID, intB, "job-1")
	clientBGID := globalIDFor("Client", clientB)

	t.Run("MemberCannotCreateIntegration", func(t *testing.T) {
		r := b.gql(t, b.memberA, createTave, map[string]any{"name": "x", "key": "k"})
		require.Equal(t, "FORBIDDEN", r.code())
	})
	t.Run("OtherOrgsIntegrationIsNotFound", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `query($id: ID!) { node(id: $id) { id ... on Integration { name } } }`, map[string]any{"id": intB})
		require.Equal(t, "NOT_FOUND", r.code())
		require.Nil(t, r.Data["node"])

		// Exactly like an id that does not exist at all.
		missing := globalIDFor("Integration", 999999)
		r2 := b.gql(t, b.ownerA, `query($id: ID!) { node(id: $id) { id ... on Integration { name } } }`, map[string]any{"id": missing})
		require.Equal(t, r2.code(), r.code())
		require.Equal(t, r2.Errors[0].Message, r.Errors[0].Message)
	})
	t.Run("OtherOrgsClientIsNotFound", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `query($id: ID!) { node(id: $id) { ... on Client { email } } }`, map[string]any{"id": clientBGID})
		require.Equal(t, "NOT_FOUND", r.code())
	})
	t.Run("OtherOrgByID", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `query($id: ID!) { organization(id: $id) { name } }`, map[string]any{"id": globalIDFor("Organization", b.orgB.ID)})
		require.Equal(t, "NOT_FOUND", r.code())
	})
	t.Run("OtherOrgCannotChangeOrDelete", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, name: "mine"}) { integration { name } } }`, map[string]any{"id": intB})
		require.Equal(t, "NOT_FOUND", r.code())
		r = b.gql(t, b.ownerA, `mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedIntegrationId } }`, map[string]any{"id": intB})
		require.Equal(t, "NOT_FOUND", r.code())
		data := b.mustGQL(t, b.ownerB, `query($id: ID!) { node(id: $id) { ... on Integration { name } } }`, map[string]any{"id": intB})
		require.Equal(t, "B's Tave", dig(data, "node", "name"))
	})
	t.Run("SupportReadsAnyOrg", func(t *testing.T) {
		data := b.mustGQL(t, b.support, `query($id: ID!) { node(id: $id) { ... on Client { email integration { name } } } }`, map[string]any{"id": clientBGID})
		require.Equal(t, "emma@example.com", dig(data, "node", "email"))
		require.Equal(t, "B's Tave", dig(data, "node", "integration", "name"))

		data = b.mustGQL(t, b.support, `query($id: ID!) { organization(id: $id) { name integrations { totalCount nodes { name credentialsSet } } } }`,
			map[string]any{"id": globalIDFor("Organization", b.orgB.ID)})
		require.Equal(t, "Studio B", dig(data, "organization", "name"))
		require.EqualValues(t, 1, dig(data, "organization", "integrations", "totalCount"))
	})
	t.Run("SupportCannotManage", func(t *testing.T) {
		r := b.gql(t, b.support, createTave, map[string]any{"name": "x", "key": "k"})
		require.Equal(t, "FORBIDDEN", r.code())
	})
	t.Run("OwnListsOnlyOwnRows", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `{ organization { integrations { totalCount } clients { totalCount } } }`, nil)
		require.EqualValues(t, 0, dig(data, "organization", "integrations", "totalCount"))
		require.EqualValues(t, 0, dig(data, "organization", "clients", "totalCount"))
	})
}

func TestCredentialsAreSealed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const key = "tave-live-key-7f3a9c2b51d4e8a6"
	data := b.mustGQL(t, b.ownerA, createTave, map[string]any{"name": "Tave", "key": key})
	integ := dig(data, "createIntegration", "integration").(map[string]any)
	require.Equal(t, true, integ["credentialsSet"])
	require.Equal(t, "…e8a6", integ["credentialHint"])

	// The raw row holds no plaintext anywhere.
	var raw string
	err := b.pool.QueryRow(context.Background(), "SELECT i::text FROM integrations i").Scan(&raw)
	require.NoError(t, err)
	require.NotContains(t, raw, key)
	require.NotContains(t, raw, fmt.Sprintf("%x", key))
	var sealed []byte
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT credentials_sealed FROM integrations").Scan(&sealed))
	require.False(t, bytes.Contains(sealed, []byte(key)))

	// The schema has no field that could return the key.
	r := b.gql(t, b.ownerA, `{ organization { integrations { nodes { credentials } } } }`, nil)
	require.Equal(t, "BAD_USER_INPUT", r.code())

	// Updating credentials re-seals and changes the hint.
	id := integ["id"].(string)
	data = b.mustGQL(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, credentials: {apiKey: "new-key-0000-9999"}}) { integration { credentialHint } } }`, map[string]any{"id": id})
	require.Equal(t, "…9999", dig(data, "updateIntegration", "integration", "credentialHint"))
}

func TestIntegrationLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := createIntegration(t, b, b.ownerA, "Tave studio", "key-1234")

	t.Run("Update", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, name: "Renamed", baseUrl: "http://127.0.0.1:9/tave/api/v2/", autoSyncMinutes: 60}) { integration { name baseUrl autoSyncMinutes } } }`, map[string]any{"id": id})
		require.Equal(t, "Renamed", dig(data, "updateIntegration", "integration", "name"))
		require.Equal(t, "http://127.0.0.1:9/tave/api/v2", dig(data, "updateIntegration", "integration", "baseUrl"))
		require.EqualValues(t, 60, dig(data, "updateIntegration", "integration", "autoSyncMinutes"))

		// An explicit null clears; leaving a field out keeps it.
		data = b.mustGQL(t, b.ownerA, `mutation($id: ID!) { updateIntegration(input: {id: $id, baseUrl: null}) { integration { name baseUrl autoSyncMinutes } } }`, map[string]any{"id": id})
		require.Nil(t, dig(data, "updateIntegration", "integration", "baseUrl"))
		require.Equal(t, "Renamed", dig(data, "updateIntegration", "integration", "name"))
		require.EqualValues(t, 60, dig(data, "updateIntegration", "integration", "autoSyncMinutes"))
	})
	t.Run("Validation", func(t *testing.T) {
		for _, tc := range []struct{ name, query string }{
			{"NoKey", `mutation { createIntegration(input: {provider: TAVE, name: "x"}) { integration { id } } }`},
			{"HoneyBookNeedsSecret", `mutation { createIntegration(input: {provider: HONEYBOOK, name: "x", credentials: {clientId: "a"}}) { integration { id } } }`},
			{"FileTakesNoCredentials", `mutation { createIntegration(input: {provider: CSV, name: "x", credentials: {apiKey: "a"}}) { integration { id } } }`},
			{"BadURL", `mutation { createIntegration(input: {provider: TAVE, name: "x", baseUrl: "ftp://x", credentials: {apiKey: "a"}}) { integration { id } } }`},
			{"BlankName", `mutation { createIntegration(input: {provider: TAVE, name: "  ", credentials: {apiKey: "a"}}) { integration { id } } }`},
			{"AutoSyncTooOften", `mutation { createIntegration(input: {provider: TAVE, name: "x", autoSyncMinutes: 1, credentials: {apiKey: "a"}}) { integration { id } } }`},
			{"UnknownProvider", `mutation { createIntegration(input: {provider: DUBSADO, name: "x"}) { integration { id } } }`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := b.gql(t, b.ownerA, tc.query, nil)
				require.Equal(t, "BAD_USER_INPUT", r.code(), "%+v", r.Errors)
			})
		}
		data := b.mustGQL(t, b.ownerA, `{ organization { integrations { totalCount } } }`, nil)
		require.EqualValues(t, 1, dig(data, "organization", "integrations", "totalCount"), "a rejected mutation saved nothing")
	})
	t.Run("FileIntegration", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `mutation { createIntegration(input: {provider: LIGHTBLUE, name: "Light Blue export"}) { integration { provider credentialsSet credentialHint } } }`, nil)
		require.Equal(t, false, dig(data, "createIntegration", "integration", "credentialsSet"))
		require.Nil(t, dig(data, "createIntegration", "integration", "credentialHint"))
	})
	t.Run("Delete", func(t *testing.T) {
		other := createIntegration(t, b, b.ownerA, "to delete", "key-9")
		insertClient(t, b, b.orgA.ID, other, "c-1")
		data := b.mustGQL(t, b.ownerA, `{ organization { clients { totalCount } } }`, nil)
		require.EqualValues(t, 1, dig(data, "organization", "clients", "totalCount"))

		b.mustGQL(t, b.ownerA, `mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedIntegrationId } }`, map[string]any{"id": other})
		r := b.gql(t, b.ownerA, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": other})
		require.Equal(t, "NOT_FOUND", r.code())
		data = b.mustGQL(t, b.ownerA, `{ organization { clients { totalCount } } }`, nil)
		require.EqualValues(t, 0, dig(data, "organization", "clients", "totalCount"))
	})
}

func TestPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	intID := createIntegration(t, b, b.ownerA, "Tave", "key-1")
	want := map[string]bool{}
	for i := range 23 {
		id := insertClient(t, b, b.orgA.ID, intID, fmt.Sprintf("ext-%d", i))
		want[globalIDFor("Client", id)] = true
	}
	const page = `query($first: Int, $after: String, $last: Int, $before: String) {
  organization { clients(first: $first, after: $after, last: $last, before: $before) {
    totalCount pageSize network
    edges { cursor node { id displayName } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`

	walk := func(t *testing.T, forward bool) []string {
		var seen []string
		vars := map[string]any{}
		for range 10 {
			if forward {
				vars["first"] = 5
			} else {
				vars["last"] = 5
			}
			data := b.mustGQL(t, b.ownerA, page, vars)
			conn := dig(data, "organization", "clients").(map[string]any)
			require.EqualValues(t, 23, conn["totalCount"])
			require.EqualValues(t, 5, conn["pageSize"])
			for _, e := range conn["edges"].([]any) {
				seen = append(seen, dig(e, "node", "id").(string))
			}
			info := conn["pageInfo"].(map[string]any)
			if forward {
				if !info["hasNextPage"].(bool) {
					return seen
				}
				vars = map[string]any{"after": info["endCursor"]}
			} else {
				if !info["hasPreviousPage"].(bool) {
					return seen
				}
				vars = map[string]any{"before": info["startCursor"]}
			}
		}
		t.Fatal("paging did not end")
		return nil
	}
	fwd := walk(t, true)
	bwd := walk(t, false)
	require.Len(t, fwd, 23)
	require.Len(t, bwd, 23)
	got := map[string]bool{}
	for _, id := range fwd {
		require.False(t, got[id], "duplicate %s", id)
		got[id] = true
	}
	require.Equal(t, want, got)

	t.Run("Clamped", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `{ organization { clients(first: 100000) { pageSize } a: clients(first: -3) { pageSize } } }`, nil)
		require.EqualValues(t, 100, dig(data, "organization", "clients", "pageSize"))
		require.EqualValues(t, 1, dig(data, "organization", "a", "pageSize"))
	})
	t.Run("BadCursor", func(t *testing.T) {
		r := b.gql(t, b.ownerA, `{ organization { clients(after: "nope") { pageSize } } }`, nil)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})
	t.Run("NetworkArgumentAndHints", func(t *testing.T) {
		data := b.mustGQL(t, b.ownerA, `{ organization { clients(network: SLOW) { pageSize network } } }`, nil)
		require.EqualValues(t, 10, dig(data, "organization", "clients", "pageSize"))
		data = b.mustGQL(t, b.ownerA, `{ organization { clients { pageSize network } } }`, nil)
		require.Equal(t, "MEDIUM", dig(data, "organization", "clients", "network"))
	})
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
	}{
		{"MalformedJSON", "application/json", `{"query": "{ viewer { role } }"`},
		{"EmptyBody", "application/json", ``},
		{"NotAnObject", "application/json", `"hello"`},
		{"UnknownField", "application/json", `{"query": "{ viewer { role shoeSize } }"}`},
		{"WrongVariableType", "application/json", `{"query": "query($f: Int) { organization { clients(first: $f) { pageSize } } }", "variables": {"f": "ten"}}`},
		{"SyntaxError", "application/json", `{"query": "{ viewer { role "}`},
		{"NoQuery", "application/json", `{"variables": {}}`},
		{"UnknownOperationName", "application/json", `{"query": "query A { viewer { role } }", "operationName": "B"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post(t, b.ownerA, tc.contentType, []byte(tc.body))
			require.Less(t, r.Status, 500, "never a 500")
			require.NotEmpty(t, r.Errors)
			require.NotEmpty(t, r.Errors[0].Message)
			require.Equal(t, "BAD_USER_INPUT", r.code(), "%+v", r.Errors)
		})
	}
}

func TestNodeTypes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	intID := createIntegration(t, b, b.ownerA, "Tave", "key-1")
	clientID := globalIDFor("Client", insertClient(t, b, b.orgA.ID, intID, "job-7"))
	data := b.mustGQL(t, b.ownerA, `query($a: ID!, $b: ID!, $c: ID!) {
		a: node(id: $a) { __typename id } b: node(id: $b) { __typename id ... on Client { externalId displayName integration { id } } }
		c: node(id: $c) { __typename } }`,
		map[string]any{"a": intID, "b": clientID, "c": globalIDFor("Organization", b.orgA.ID)})
	require.Equal(t, "Integration", dig(data, "a", "__typename"))
	require.Equal(t, intID, dig(data, "a", "id"))
	require.Equal(t, "Client", dig(data, "b", "__typename"))
	require.Equal(t, "job-7", dig(data, "b", "externalId"))
	require.Equal(t, "Emma Clarke", dig(data, "b", "displayName"))
	require.Equal(t, intID, dig(data, "b", "integration", "id"))
	require.Equal(t, "Organization", dig(data, "c", "__typename"))

	r := b.gql(t, b.ownerA, `{ node(id: "garbage!") { id } }`, nil)
	require.Equal(t, "BAD_USER_INPUT", r.code())
	_ = db.ErrNotFound
}
