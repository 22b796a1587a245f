// Package playground serves crmhub's GraphQL Playground: GraphiQL built from
// npm by web/build.mjs into dist/ and embedded in the binary, so the page works
// with no internet access and under a strict Content-Security-Policy (no
// external origins, no inline script).
//
// Mount it with [Mount], or by hand:
//
//	mux.Handle("/playground/", http.StripPrefix("/playground", playground.Handler("/graphql")))
package playground

import (
	"bytes"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// dist holds the built assets. It is committed, so `go build` needs no npm;
// see README.md for how to rebuild it.
//
//go:embed dist
var dist embed.FS

// hashedName matches the content-hashed bundles esbuild writes
// (app-UJJ7JJCM.js); they never change, so browsers may cache them forever.
var hashedName = regexp.MustCompile(`^[a-z]+-[A-Z0-9]{8}\.(js|css)$`)

// contentTypes is fixed here rather than taken from the host's mime.types, so
// the page behaves the same on every machine.
var contentTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE
}

// asset is one embedded file, with its gzip copy when the build made one.
type asset struct {
	body        []byte
	gzip        []byte
	contentType string
	immutable   bool
}

// handler serves index.html and the assets next to it.
type handler struct {
	index      *template.Template
	endpoint   string
	connectSrc string
	assets     map[string]asset
}

// Handler returns the Playground's handler. endpoint is the GraphQL URL the
// page talks to, usually "/graphql"; subscriptions use the same URL with the
// ws or wss scheme (graphql-transport-ws). The handler expects its mount
// prefix stripped, so it sees "/" for the page and "/app-….js" for assets;
// use [Mount] or [http.StripPrefix].
//
// It panics if the embedded assets are missing or broken, which can only
// happen in a build whose dist/ was edited by hand; the package's tests catch
// that.
func Handler(endpoint string) http.Handler {
	h, err := newHandler(dist, endpoint)
	if err != nil {
		panic(fmt.Sprintf("playground: %v", err))
	}
	return h
}

// Mount registers the Playground on mux at /playground/, with a redirect from
// /playground to /playground/ so relative asset URLs resolve. endpoint is the
// GraphQL URL, as for [Handler].
func Mount(mux *http.ServeMux, endpoint string) {
	mux.Handle("/playground/", http.StripPrefix("/playground", Handler(endpoint)))
	mux.HandleFunc("/playground", func(w http.ResponseWriter, r *http.Request) {
		// A relative Location keeps the redirect right behind a proxy that
		// mounts crmhub under a path prefix; http.Redirect would make it
		// absolute.
		target := "playground/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusMovedPermanently)
	})
}

func newHandler(fsys fs.FS, endpoint string) (*handler, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, fmt.Errorf("error opening embedded dist: %w", err)
	}
	indexSrc, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, fmt.Errorf("error reading index.html (run the build in graph/playground/web): %w", err)
	}
	index, err := template.New("index.html").Parse(string(indexSrc))
	if err != nil {
		return nil, fmt.Errorf("error parsing index.html: %w", err)
	}

	h := &handler{
		index:      index,
		endpoint:   endpoint,
		connectSrc: connectSrc(endpoint),
		assets:     map[string]asset{},
	}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return nil, fmt.Errorf("error listing dist: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "index.html" || strings.HasSuffix(name, ".gz") {
			continue
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return nil, fmt.Errorf("error reading %s: %w", name, err)
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil, fmt.Errorf("no content type for %s", name)
		}
		a := asset{body: body, contentType: ct, immutable: hashedName.MatchString(name)}
		if gz, err := fs.ReadFile(sub, name+".gz"); err == nil {
			a.gzip = gz
		}
		h.assets[name] = a
	}
	return h, nil
}

// connectSrc is the CSP connect-src list. 'self' covers the same origin's
// ws:// and wss:// URLs in CSP Level 3 browsers; an endpoint on another origin
// is added explicitly, with its WebSocket twin.
func connectSrc(endpoint string) string {
	src := "'self'"
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return src
	}
	switch u.Scheme {
	case "http":
		src += " http://" + u.Host + " ws://" + u.Host
	case "https":
		src += " https://" + u.Host + " wss://" + u.Host
	}
	return src
}

// contentSecurityPolicy allows only the page's own scripts, styles, fonts and
// API. Styles also allow one nonce per response: Radix dialogs insert a small
// <style> element to lock scrolling, and the page hands them the nonce.
// Fonts and icons are data: URIs inside the bundled CSS.
func (h *handler) contentSecurityPolicy(nonce string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src " + h.connectSrc,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// ServeHTTP implements [http.Handler].
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")

	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" || name == "index.html" {
		h.serveIndex(w, r)
		return
	}
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if a.immutable {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Type", a.contentType)
	body := a.body
	if a.gzip != nil {
		w.Header().Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			w.Header().Set("Content-Encoding", "gzip")
			body = a.gzip
		}
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// serveIndex renders the page with the endpoint and a fresh style nonce. It is
// never cached, so a new deploy's asset names are picked up at once.
func (h *handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	// rand.Text gives 128 random bits in base32, which is valid nonce syntax.
	nonce := rand.Text()
	var buf bytes.Buffer
	if err := h.index.Execute(&buf, struct{ Endpoint, Nonce string }{h.endpoint, nonce}); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentTypes[".html"])
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", h.contentSecurityPolicy(nonce))
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(buf.Bytes()))
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
