package playground

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The checks below use only the standard library, so this package's tests
// need nothing from go.sum.

func requireNoError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func requireEqual[T comparable](t *testing.T, want, got T, msg ...any) {
	t.Helper()
	if want != got {
		t.Fatalf("want %v, got %v %v", want, got, msg)
	}
}

func requireContains(t *testing.T, s, sub string, msg ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q %v", s, sub, msg)
	}
}

func requireNotContains(t *testing.T, s, sub string, msg ...any) {
	t.Helper()
	if strings.Contains(s, sub) {
		t.Fatalf("%.200q contains %q %v", s, sub, msg)
	}
}

func requireNotRegexp(t *testing.T, re, s string, msg ...any) {
	t.Helper()
	if m := regexp.MustCompile(re).FindString(s); m != "" {
		t.Fatalf("found %q matching %s %v", m, re, msg)
	}
}

type testBundle struct {
	server *httptest.Server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	mux := http.NewServeMux()
	Mount(mux, "/graphql")
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	return &testBundle{server: server}
}

// get fetches path without following redirects or decoding gzip.
func (b *testBundle) get(t *testing.T, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.server.URL+path, nil)
	requireNoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{
		Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	requireNoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	requireNoError(t, err)
	return resp, body
}

var assetRef = regexp.MustCompile(`(?:href|src)="(app-[A-Z0-9]{8}\.(?:js|css))"`)

func TestIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, body := b.get(t, "/playground/", nil)
	requireEqual(t, http.StatusOK, resp.StatusCode)
	requireEqual(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	requireEqual(t, "no-store", resp.Header.Get("Cache-Control"))
	requireEqual(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	requireContains(t, string(body), `data-endpoint="/graphql"`)
	requireNotContains(t, string(body), "<script>", "no inline script")
	requireNotRegexp(t, `(src|href)="(https?:)?//`, string(body), "no external assets")

	csp := resp.Header.Get("Content-Security-Policy")
	requireContains(t, csp, "default-src 'none'")
	requireContains(t, csp, "script-src 'self';")
	requireContains(t, csp, "connect-src 'self';")
	requireNotContains(t, csp, "unsafe-inline")
	requireNotContains(t, csp, "unsafe-eval")

	// The style nonce in the page matches the header and changes per response.
	nonce := regexp.MustCompile(`data-style-nonce="([^"]+)"`).FindStringSubmatch(string(body))
	if len(nonce) != 2 {
		t.Fatal("no data-style-nonce in the page")
	}
	requireContains(t, csp, "'nonce-"+nonce[1]+"'")
	_, body2 := b.get(t, "/playground/", nil)
	requireNotContains(t, string(body2), nonce[1])

	refs := assetRef.FindAllStringSubmatch(string(body), -1)
	requireEqual(t, 2, len(refs), "one script and one stylesheet")
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, _ := b.get(t, "/playground?x=1", nil)
	requireEqual(t, http.StatusMovedPermanently, resp.StatusCode)
	requireEqual(t, "playground/?x=1", resp.Header.Get("Location"))
}

func TestAssets(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, index := b.get(t, "/playground/", nil)
	for _, ref := range assetRef.FindAllStringSubmatch(string(index), -1) {
		name := ref[1]
		wantType := "text/javascript; charset=utf-8"
		if strings.HasSuffix(name, ".css") {
			wantType = "text/css; charset=utf-8"
		}

		resp, plain := b.get(t, "/playground/"+name, nil)
		requireEqual(t, http.StatusOK, resp.StatusCode, name)
		requireEqual(t, wantType, resp.Header.Get("Content-Type"), name)
		requireEqual(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"), name)
		requireEqual(t, "", resp.Header.Get("Content-Encoding"), name)
		if len(plain) == 0 {
			t.Fatalf("%s is empty", name)
		}

		resp, compressed := b.get(t, "/playground/"+name, http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
		requireEqual(t, "gzip", resp.Header.Get("Content-Encoding"), name)
		requireEqual(t, "Accept-Encoding", resp.Header.Get("Vary"), name)
		zr, err := gzip.NewReader(bytes.NewReader(compressed))
		requireNoError(t, err)
		unzipped, err := io.ReadAll(zr)
		requireNoError(t, err)
		if !bytes.Equal(plain, unzipped) {
			t.Fatalf("%s: gzip copy is stale; rebuild dist", name)
		}

		// Nothing in the bundle may load from another origin at run time.
		requireNotRegexp(t, `@import\s+url\(\s*["']?https?:`, string(plain), name)
	}

	resp, body := b.get(t, "/playground/LICENSE", nil)
	requireEqual(t, http.StatusOK, resp.StatusCode)
	requireEqual(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	requireContains(t, string(body), "MIT")

	resp, _ = b.get(t, "/playground/THIRD_PARTY_NOTICES.txt", nil)
	requireEqual(t, http.StatusOK, resp.StatusCode)

	resp, _ = b.get(t, "/playground/nope.js", nil)
	requireEqual(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = b.get(t, "/playground/../server.go", nil)
	if resp.StatusCode == http.StatusOK {
		t.Fatal("path traversal served a file")
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, err := http.Post(b.server.URL+"/playground/", "text/plain", nil)
	requireNoError(t, err)
	resp.Body.Close()
	requireEqual(t, http.StatusMethodNotAllowed, resp.StatusCode)
	requireEqual(t, "GET, HEAD", resp.Header.Get("Allow"))
}

func TestConnectSrc(t *testing.T) {
	t.Parallel()

	requireEqual(t, "'self'", connectSrc("/graphql"))
	requireEqual(t, "'self' https://api.example.com wss://api.example.com", connectSrc("https://api.example.com/graphql"))
	requireEqual(t, "'self' http://127.0.0.1:9 ws://127.0.0.1:9", connectSrc("http://127.0.0.1:9/graphql"))
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()

	for header, want := range map[string]bool{
		"":                   false,
		"gzip":               true,
		"br, GZIP;q=0.5":     true,
		"gzip;q=0":           false,
		"identity":           false,
		"*":                  true,
		"deflate, gzip; q=0": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		requireEqual(t, want, acceptsGzip(r), header)
	}
}
