package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// typeRef is an introspected type reference.
type typeRef struct {
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	OfType *typeRef `json:"ofType"`
}

func (t *typeRef) named() *typeRef {
	for t.OfType != nil {
		t = t.OfType
	}
	return t
}

// String renders t as GraphQL writes it, for variable definitions.
func (t *typeRef) String() string {
	switch t.Kind {
	case "NON_NULL":
		return t.OfType.String() + "!"
	case "LIST":
		return "[" + t.OfType.String() + "]"
	}
	return t.Name
}

type introField struct {
	Name string `json:"name"`
	Args []struct {
		Name string   `json:"name"`
		Type *typeRef `json:"type"`
	} `json:"args"`
	Type *typeRef `json:"type"`
}

type introType struct {
	Name          string                  `json:"name"`
	Kind          string                  `json:"kind"`
	Fields        []introField            `json:"fields"`
	InputFields   []introField            `json:"inputFields"`
	EnumValues    []struct{ Name string } `json:"enumValues"`
	PossibleTypes []struct{ Name string } `json:"possibleTypes"`
}

type introSchema struct {
	QueryType        *struct{ Name string } `json:"queryType"`
	MutationType     *struct{ Name string } `json:"mutationType"`
	SubscriptionType *struct{ Name string } `json:"subscriptionType"`
	Types            []*introType           `json:"types"`
	byName           map[string]*introType
}

const introspectionQuery = `{ __schema {
  queryType { name } mutationType { name } subscriptionType { name }
  types { name kind possibleTypes { name } enumValues { name }
    fields { name args { name type { ...T } } type { ...T } }
    inputFields { name type { ...T } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }`

// uploadPlaceholder marks where a generated variable is a file.
const uploadPlaceholder = "\x00upload"

// operationBuilder writes generic operations from the introspected schema.
type operationBuilder struct {
	s *introSchema
}

// hasID reports whether a value of t holds an ID somewhere.
func (o *operationBuilder) hasID(t *typeRef, depth int) bool {
	n := t.named()
	if n.Name == "ID" {
		return true
	}
	if n.Kind != "INPUT_OBJECT" || depth > 4 {
		return false
	}
	for _, f := range o.s.byName[n.Name].InputFields {
		if o.hasID(f.Type, depth+1) {
			return true
		}
	}
	return false
}

// value is a minimal valid value of t with every ID set to id.
func (o *operationBuilder) value(t *typeRef, id string, depth int) any {
	switch t.Kind {
	case "NON_NULL":
		return o.value(t.OfType, id, depth)
	case "LIST":
		return []any{o.value(t.OfType, id, depth)}
	case "ENUM":
		return o.s.byName[t.Name].EnumValues[0].Name
	case "INPUT_OBJECT":
		obj := map[string]any{}
		for _, f := range o.s.byName[t.Name].InputFields {
			if f.Type.Kind == "NON_NULL" || (depth < 4 && o.hasID(f.Type, depth)) {
				obj[f.Name] = o.value(f.Type, id, depth+1)
			}
		}
		return obj
	}
	switch t.Name {
	case "ID":
		return id
	case "Int":
		return 10
	case "Float":
		return 1.5
	case "Boolean":
		return false
	case "Time":
		return "2026-01-01T00:00:00Z"
	case "Date":
		return "2026-06-01"
	case "Upload":
		return uploadPlaceholder
	}
	return "x"
}

// selection selects every field of typeName that needs no argument, down
// to depth levels; fields under inline fragments are aliased by type so
// that types sharing a field name never conflict.
func (o *operationBuilder) selection(typeName string, depth int, prefix string) string {
	t := o.s.byName[typeName]
	var parts []string
	parts = append(parts, "__typename")
	switch t.Kind {
	case "INTERFACE", "UNION":
		for _, p := range t.PossibleTypes {
			parts = append(parts, "... on "+p.Name+" { "+o.selection(p.Name, depth, p.Name+"_")+" }")
		}
		return strings.Join(parts, " ")
	}
	for _, f := range t.Fields {
		required := false
		for _, a := range f.Args {
			required = required || a.Type.Kind == "NON_NULL"
		}
		if required {
			continue
		}
		alias := ""
		if prefix != "" {
			alias = prefix + f.Name + ": "
		}
		switch n := f.Type.named(); n.Kind {
		case "SCALAR", "ENUM":
			parts = append(parts, alias+f.Name)
		default:
			if depth > 0 {
				parts = append(parts, alias+f.Name+" { "+o.selection(n.Name, depth-1, "")+" }")
			}
		}
	}
	return strings.Join(parts, " ")
}

// operation is one generated request.
type operation struct {
	label string
	query string
	vars  map[string]any
}

// operations writes, for each field of the root type, one operation per
// id in ids (or one, if the field takes no id).
func (o *operationBuilder) operations(kind, rootType string, ids []string) []operation {
	var ops []operation
	for _, f := range o.s.byName[rootType].Fields {
		takesID := false
		for _, a := range f.Args {
			takesID = takesID || o.hasID(a.Type, 0)
		}
		variants := ids
		if !takesID {
			variants = []string{""}
		}
		for _, id := range variants {
			var defs, args []string
			vars := map[string]any{}
			for i, a := range f.Args {
				if a.Type.Kind != "NON_NULL" && !o.hasID(a.Type, 0) {
					continue
				}
				name := fmt.Sprintf("a%d", i)
				defs = append(defs, "$"+name+": "+a.Type.String())
				args = append(args, a.Name+": $"+name)
				vars[name] = o.value(a.Type, id, 0)
			}
			q := kind
			if len(defs) > 0 {
				q += "(" + strings.Join(defs, ", ") + ")"
			}
			q += " { " + f.Name
			if len(args) > 0 {
				q += "(" + strings.Join(args, ", ") + ")"
			}
			if n := f.Type.named(); n.Kind != "SCALAR" && n.Kind != "ENUM" {
				q += " { " + o.selection(n.Name, 3, "") + " }"
			}
			q += " }"
			ops = append(ops, operation{label: kind + " " + f.Name + " " + id, query: q, vars: vars})
		}
	}
	return ops
}

// uploadPaths replaces upload placeholders in vars by null and returns
// their paths, as the multipart request spec names them.
func uploadPaths(v any, path string) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == uploadPlaceholder {
				x[k] = nil
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, uploadPaths(e, path+"."+k)...)
		}
	case []any:
		for i, e := range x {
			if e == uploadPlaceholder {
				x[i] = nil
				out = append(out, fmt.Sprintf("%s.%d", path, i))
				continue
			}
			out = append(out, uploadPaths(e, fmt.Sprintf("%s.%d", path, i))...)
		}
	}
	return out
}

// send runs op as the holder of token and returns the raw response text;
// subscriptions run over SSE for a moment.
func (op operation) send(t *testing.T, b *testBundle, token string, subscription bool) string {
	t.Helper()
	vars := op.vars
	paths := uploadPaths(vars, "variables")
	params, err := json.Marshal(map[string]any{"query": op.query, "variables": vars})
	require.NoError(t, err)
	body, contentType := params, "application/json"
	if len(paths) > 0 {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("operations", string(params)))
		m := map[string][]string{}
		for i, p := range paths {
			m[fmt.Sprint(i)] = []string{p}
		}
		mapJSON, _ := json.Marshal(m)
		require.NoError(t, mw.WriteField("map", string(mapJSON)))
		for i := range paths {
			fw, err := mw.CreateFormFile(fmt.Sprint(i), "clients.csv")
			require.NoError(t, err)
			_, _ = fw.Write([]byte("first_name,last_name,email\nAda,Lovelace,ada@example.com\n"))
		}
		require.NoError(t, mw.Close())
		body, contentType = buf.Bytes(), mw.FormDataContentType()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if subscription {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, 1500*time.Millisecond)
		defer c2()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("GraphQL-Require-Preflight", "1")
	req.Header.Set("Authorization", "Bearer "+token)
	if subscription {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, op.label)
	defer resp.Body.Close()
	if !subscription {
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(raw)
	}
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() { // Until the stream completes or the timeout cuts it.
		sb.WriteString(sc.Text() + "\n")
	}
	return sb.String()
}

// snapshotOrg is every row of the organization, as JSON.
func snapshotOrg(t *testing.T, b *testBundle, orgID int64) map[string]string {
	t.Helper()
	tables := map[string]string{
		"organizations":  "SELECT * FROM organizations WHERE id = $1",
		"api_tokens":     "SELECT * FROM api_tokens WHERE org_id = $1",
		"integrations":   "SELECT * FROM integrations WHERE org_id = $1",
		"clients":        "SELECT * FROM clients WHERE org_id = $1",
		"import_runs":    "SELECT * FROM import_runs WHERE org_id = $1",
		"import_rejects": "SELECT * FROM import_rejects WHERE org_id = $1",
		"import_files":   "SELECT * FROM import_files WHERE org_id = $1",
		"audit_log":      "SELECT * FROM audit_log WHERE org_id = $1",
	}
	out := map[string]string{}
	for name, q := range tables {
		var s *string
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT json_agg(t ORDER BY t.id)::text FROM ("+q+") t", orgID).Scan(&s), name)
		if s != nil {
			out[name] = *s
		}
	}
	return out
}

// TestTenantIsolationBySchema enumerates every query, mutation and subscription
// field by introspection and calls each with organization A's tokens and
// every one of organization B's ids: no response holds anything of B, and
// none of B's rows change.
func TestTenantIsolationBySchema(t *testing.T) {
	t.Parallel()
	b, _ := setupAppConfig(t, false, func(cfg *Config, _ *serveOptions) {
		// The generated selections are wide: the query limits are not what
		// this test is about.
		cfg.Limits.MaxComplexity, cfg.Limits.MaxAliases, cfg.Limits.MaxDepth = 1_000_000, 10_000, 50
	})
	ctx := context.Background()

	// B's data, with markers that must never reach A.
	integB := createIntegration(t, b, b.ownerB, "Bzzmarker Tave", "demo-bzzkey")
	csvB := dig(b.mustGQL(t, b.ownerB, `mutation { createIntegration(input: {provider: CSV, name: "Bzzmarker CSV"}) { integration { id } } }`, nil),
		"createIntegration", "integration", "id").(string)
	_, intBID, err := parseGID(integB)
	require.NoError(t, err)
	var clientIDs []int64
	for i := range 3 {
		var id int64
		require.NoError(t, b.pool.QueryRow(ctx, `
			INSERT INTO clients (org_id, integration_id, external_id, first_name, last_name, email, email_normalized, venue)
			VALUES ($1, $2, $3, 'Bzzfirst', 'Bzzlast', $4, $4, 'Bzzvenue') RETURNING id`,
			b.orgB.ID, intBID, fmt.Sprintf("bzz-ext-%d", i), fmt.Sprintf("bzz%d@b.example", i)).Scan(&id))
		clientIDs = append(clientIDs, id)
	}
	var runID int64
	require.NoError(t, b.pool.QueryRow(ctx, `
		INSERT INTO import_runs (org_id, integration_id, mode, state, idempotency_key) VALUES ($1, $2, 'FULL', 'FAILED', 'bzz-idem') RETURNING id`,
		b.orgB.ID, intBID).Scan(&runID))
	_, err = b.pool.Exec(ctx, `INSERT INTO import_rejects (run_id, org_id, row_number, external_id, reason, raw) VALUES ($1, $2, 1, 'bzz-rej', 'Bzzreason', '{"name": "Bzzraw"}')`, runID, b.orgB.ID)
	require.NoError(t, err)
	tokB := b.mustGQL(t, b.ownerB, `mutation { createApiToken(input: {name: "Bzztoken", role: MEMBER}) { apiToken { id prefix } } }`, nil)
	var ownerBTokenID int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT id FROM api_tokens WHERE org_id = $1 AND role = 'OWNER'", b.orgB.ID).Scan(&ownerBTokenID))

	bIDs := []string{
		globalIDFor("Organization", b.orgB.ID), integB, csvB, globalIDFor("ImportRun", runID),
		dig(tokB, "createApiToken", "apiToken", "id").(string), globalIDFor("ApiToken", ownerBTokenID),
	}
	for _, id := range clientIDs {
		bIDs = append(bIDs, globalIDFor("Client", id))
	}
	markers := append([]string{"Bzz", "bzz", "Studio B", "studio-b", dig(tokB, "createApiToken", "apiToken", "prefix").(string)}, bIDs...)

	// A has data of its own, so A's queries return something.
	integA := createIntegration(t, b, b.ownerA, "A Tave", "demo-akey")
	insertClient(t, b, b.orgA.ID, integA, "a-1")

	// The schema, by introspection.
	var schema struct {
		Schema introSchema `json:"__schema"`
	}
	raw, err := json.Marshal(b.mustGQL(t, b.support, introspectionQuery, nil))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &schema))
	s := &schema.Schema
	s.byName = map[string]*introType{}
	for _, typ := range s.Types {
		s.byName[typ.Name] = typ
	}
	ob := &operationBuilder{s: s}

	type root struct {
		kind, name string
	}
	var roots []root
	roots = append(roots, root{"query", s.QueryType.Name})
	if s.MutationType != nil {
		roots = append(roots, root{"mutation", s.MutationType.Name})
	}
	if s.SubscriptionType != nil {
		roots = append(roots, root{"subscription", s.SubscriptionType.Name})
	}

	before := snapshotOrg(t, b, b.orgB.ID)
	fields, requests, answered := map[string]bool{}, 0, 0
	for _, r := range roots {
		for _, op := range ob.operations(r.kind, r.name, bIDs) {
			fields[r.kind+" "+strings.Fields(op.label)[1]] = true
			for _, token := range []string{b.ownerA, b.memberA} {
				resp := op.send(t, b, token, r.kind == "subscription")
				requests++
				for _, m := range markers {
					require.NotContains(t, resp, m, "%s leaked B's %q:\n%s\nresponse: %.2000s", op.label, m, op.query, resp)
				}
				if strings.Contains(resp, `"data":{`) {
					answered++
				}
			}
		}
	}
	require.Equal(t, before, snapshotOrg(t, b, b.orgB.ID), "B's rows changed")

	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	t.Logf("%d fields, %d requests, %d with data: %s", len(fields), requests, answered, strings.Join(names, ", "))
	require.Contains(t, names, "query node")
	require.Contains(t, names, "mutation cancelImport")
	require.Positive(t, answered, "A's own requests work")

	// The harness itself finds B's data when it is allowed to: SUPPORT sees
	// the markers, so their absence above means something.
	resp := operation{query: `query($id: ID!) { node(id: $id) { ... on Client { email } } }`,
		vars: map[string]any{"id": globalIDFor("Client", clientIDs[0])}}.send(t, b, b.support, false)
	require.Contains(t, resp, "bzz0@b.example")
}
