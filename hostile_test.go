package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostileCase is one entry of testdata/hostile.json: a request crmhub must
// refuse (or bound) quickly, with the status and extensions.code it must
// answer.
type hostileCase struct {
	Name string `json:"name"`
	// Method defaults to POST.
	Method string `json:"method"`
	// ContentType defaults to application/json; "-" sends none.
	ContentType string            `json:"contentType"`
	Headers     map[string]string `json:"headers"`
	// Auth is "owner" (default), "none" or "bad".
	Auth string `json:"auth"`
	// The body is Body, or BodyBase64, or {"query": Query, "variables":
	// Variables, "operationName": OperationName}, or made by Gen with N.
	Body          *string        `json:"body"`
	BodyBase64    string         `json:"bodyBase64"`
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
	Gen           string         `json:"gen"`
	N             int            `json:"n"`
	Field         string         `json:"field"`
	// RawQuery is the URL query string (GET).
	RawQuery string `json:"rawQuery"`
	// ContentLength overrides the declared length.
	ContentLength int64 `json:"contentLength"`

	Status   int    `json:"status"`
	Code     string `json:"code"`
	Contains string `json:"contains"`
}

func loadHostileCases(t testing.TB) []*hostileCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/hostile.json")
	require.NoError(t, err)
	var cases []*hostileCase
	require.NoError(t, json.Unmarshal(raw, &cases))
	return cases
}

// generated builds the query of a generated case.
func (c *hostileCase) generated() string {
	var b strings.Builder
	switch c.Gen {
	case "nest": // a { a { a { … } } }
		b.WriteString("{ ")
		b.WriteString(strings.Repeat("a { ", c.N))
		b.WriteString("b")
		b.WriteString(strings.Repeat(" }", c.N))
		b.WriteString(" }")
	case "inlineNest": // fields nested through inline fragments
		b.WriteString("{ ")
		b.WriteString(strings.Repeat("viewer { ... on Viewer { ", c.N))
		b.WriteString("role")
		b.WriteString(strings.Repeat(" } }", c.N))
		b.WriteString(" }")
	case "fragmentChain":
		b.WriteString("query { ...F0 }\n")
		for i := range c.N {
			fmt.Fprintf(&b, "fragment F%d on Query { viewer { organization { ...F%d } } }\n", i, i+1)
		}
		fmt.Fprintf(&b, "fragment F%d on Query { __typename }\n", c.N)
	case "aliases":
		b.WriteString("{ ")
		for i := range c.N {
			fmt.Fprintf(&b, "a%d: %s ", i, c.Field)
		}
		b.WriteString("}")
	case "aliasesInFragment":
		b.WriteString("{ __typename } fragment Unused on Query { ")
		for i := range c.N {
			fmt.Fprintf(&b, "a%d: __typename ", i)
		}
		b.WriteString("}")
	case "repeat":
		b.WriteString("{ ")
		b.WriteString(strings.Repeat(c.Field+" ", c.N))
		b.WriteString("}")
	case "repeatIn":
		b.WriteString("{ viewer { ")
		b.WriteString(strings.Repeat(c.Field+" ", c.N))
		b.WriteString("} }")
	case "spreadRepeat":
		b.WriteString("{ ")
		b.WriteString(strings.Repeat("...F ", c.N))
		b.WriteString("} fragment F on Query { __typename }")
	case "fragmentFanout": // each fragment spreads the next twice: 2^N fields
		b.WriteString("query { ...F0 }\n")
		for i := range c.N {
			fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
		}
		fmt.Fprintf(&b, "fragment F%d on Query { viewer { role } }\n", c.N)
	case "fragmentFanoutUnused": // the fan-out only in fragments no operation uses
		b.WriteString("query { __typename }\n")
		for i := range c.N {
			fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
		}
		fmt.Fprintf(&b, "fragment F%d on Query { viewer { role } }\n", c.N)
	case "fragmentFanoutOtherOperation": // the fan-out in an operation not selected
		b.WriteString("query Q0 { __typename }\nquery Q1 { ...F0 }\n")
		for i := range c.N {
			fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
		}
		fmt.Fprintf(&b, "fragment F%d on Query { viewer { role } }\n", c.N)
	case "hugeString":
		fmt.Fprintf(&b, `{ node(id: "%s") { id } }`, strings.Repeat("A", c.N))
	case "manyOperations":
		for i := range c.N {
			fmt.Fprintf(&b, "query Q%d { __typename }\n", i)
		}
	case "directives":
		b.WriteString("{ __typename ")
		b.WriteString(strings.Repeat("@skip(if: false) ", c.N))
		b.WriteString("}")
	case "introspectionNest":
		b.WriteString(`{ __type(name: "Query") { `)
		b.WriteString(strings.Repeat("fields { type { ", c.N))
		b.WriteString("name")
		b.WriteString(strings.Repeat(" } }", c.N))
		b.WriteString(" } }")
	}
	return b.String()
}

// request builds the case's request.
func (c *hostileCase) request(t testing.TB, b *testBundle) *http.Request {
	t.Helper()
	var body []byte
	switch {
	case c.Body != nil:
		body = []byte(*c.Body)
	case c.BodyBase64 != "":
		var err error
		body, err = base64.StdEncoding.DecodeString(c.BodyBase64)
		require.NoError(t, err)
	case c.Gen == "bigBody":
		body = []byte(`{"query": "{ viewer { role } }", "variables": {"pad": "` + strings.Repeat("x", c.N) + `"}}`)
	case c.Gen == "deepJSON":
		body = []byte(`{"query": "{ viewer { role } }", "variables": {"v": ` + strings.Repeat("[", c.N) + strings.Repeat("]", c.N) + `}}`)
	case c.Query != "" || c.Gen != "":
		q := c.Query
		if c.Gen != "" {
			q = c.generated()
		}
		params := map[string]any{"query": q}
		if c.Variables != nil {
			params["variables"] = c.Variables
		}
		if c.OperationName != "" {
			params["operationName"] = c.OperationName
		}
		if c.Gen == "manyOperations" || c.Gen == "fragmentFanoutOtherOperation" {
			params["operationName"] = "Q0"
		}
		var err error
		body, err = json.Marshal(params)
		require.NoError(t, err)
	}
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	target := "/graphql"
	if c.RawQuery != "" {
		target += "?" + c.RawQuery
	}
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if method == http.MethodGet {
		req = httptest.NewRequest(method, target, nil)
	}
	switch c.ContentType {
	case "":
		if method != http.MethodGet {
			req.Header.Set("Content-Type", "application/json")
		}
	case "-":
	default:
		req.Header.Set("Content-Type", c.ContentType)
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	switch c.Auth {
	case "", "owner":
		req.Header.Set("Authorization", "Bearer "+b.ownerA)
	case "bad":
		req.Header.Set("Authorization", "Bearer chub_notarealtoken")
	}
	if c.ContentLength > 0 {
		req.ContentLength = c.ContentLength
	}
	return req
}

// serveTimed runs one request through the real handler in-process and
// returns the response and the server's time.
func serveTimed(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, time.Duration) {
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	return rec, time.Since(start)
}

func responseCode(t testing.TB, body []byte) string {
	var out struct {
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &out) != nil || len(out.Errors) == 0 {
		return ""
	}
	code, _ := out.Errors[0].Extensions["code"].(string)
	return code
}

// TestHostileCorpus sends every request of testdata/hostile.json through the
// real handler: each answers its status and code within 100 ms of server
// time (the best of three, for a noisy machine), and a normal query works
// after each.
func TestHostileCorpus(t *testing.T) {
	t.Parallel()
	b, a := setupApp(t, false)
	cases := loadHostileCases(t)
	require.GreaterOrEqual(t, len(cases), 40)
	// Warm up: the first request pays for lazy initialisation.
	serveTimed(a.handler, (&hostileCase{Query: "{ viewer { role } }"}).request(t, b))

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			best := time.Hour
			var rec *httptest.ResponseRecorder
			for range 3 {
				var d time.Duration
				rec, d = serveTimed(a.handler, c.request(t, b))
				best = min(best, d)
			}
			body := rec.Body.Bytes()
			require.Equal(t, c.Status, rec.Code, "status; body: %.300s", body)
			require.Equal(t, c.Code, responseCode(t, body), "extensions.code; body: %.300s", body)
			if c.Contains != "" {
				require.Contains(t, string(body), c.Contains)
			}
			require.Less(t, best, 100*time.Millisecond, "server time")

			healthy, _ := serveTimed(a.handler, (&hostileCase{Query: "{ viewer { role } }"}).request(t, b))
			require.Equal(t, http.StatusOK, healthy.Code)
			require.Contains(t, healthy.Body.String(), `"role":"OWNER"`)
		})
	}
}

// FuzzGraphQLHandler throws mutated hostile requests at the real handler:
// it must never panic and never answer 5xx.
func FuzzGraphQLHandler(f *testing.F) {
	b, a := setupAppConfig(f, false, nil)
	for _, c := range loadHostileCases(f) {
		req := c.request(f, b)
		var body []byte
		if req.Body != nil {
			body, _ = readAllBody(req)
		}
		f.Add(req.Method, req.Header.Get("Content-Type"), req.URL.RawQuery, body, c.Auth != "none")
	}
	f.Fuzz(func(t *testing.T, method, contentType, rawQuery string, body []byte, authed bool) {
		switch method {
		case http.MethodGet, http.MethodPost, http.MethodOptions, http.MethodPut:
		default:
			method = http.MethodPost
		}
		req := httptest.NewRequest(method, "/graphql", bytes.NewReader(body))
		req.URL.RawQuery = rawQuery
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("GraphQL-Require-Preflight", "1")
		if authed {
			req.Header.Set("Authorization", "Bearer "+b.ownerA)
		}
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.handler.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("no answer within 5 s: %s %q %q %q", method, contentType, rawQuery, body)
		}
		require.Less(t, rec.Code, 500, "body: %.500s", rec.Body.String())
	})
}

func readAllBody(req *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(req.Body)
	req.Body.Close()
	return buf.Bytes(), err
}
