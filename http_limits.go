package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/wedsync/crmhub/resolvers"
)

// Transport limits of /graphql (DESIGN.md "API hygiene").
const (
	// MaxJSONBodyDefault bounds a JSON (or GET) request: 1 MiB.
	MaxJSONBodyDefault = 1 << 20
	// MaxUploadBodyDefault bounds a multipart upload: 50 MiB, gqlgen's
	// MaxUploadSize, so that an upload that says it is larger gets a 413
	// here instead of a parse error there.
	MaxUploadBodyDefault = maxUploadSize
)

// transportLimits refuses, before authentication or parsing, what
// /graphql never serves: bodies over their limit (413), batched JSON arrays,
// JSON that is not UTF-8, and — against CSRF — a POST a browser could send
// cross-site without a CORS preflight (form, multipart or text/plain content
// types, or none) unless it carries GraphQL-Require-Preflight or
// Apollo-Require-Preflight. Browsers only send those custom headers after a
// preflight, which a cross-site page cannot pass.
type transportLimits struct {
	maxJSONBody   int64
	maxUploadBody int64
}

func (l transportLimits) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mediaType = strings.ToLower(mediaType)
		switch mediaType {
		case "", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
			if r.Header.Get("GraphQL-Require-Preflight") == "" && r.Header.Get("Apollo-Require-Preflight") == "" {
				writeHTTPError(w, http.StatusBadRequest, resolvers.CodeBadUserInput,
					"this POST could come from any web page (content type "+orNone(mediaType)+"): send JSON (Content-Type: application/json), or add a GraphQL-Require-Preflight: 1 header (CSRF protection)")
				return
			}
		}
		limit := l.maxJSONBody
		if mediaType == "multipart/form-data" {
			limit = l.maxUploadBody
		}
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		if mediaType == "multipart/form-data" {
			// gqlgen's multipart transport streams the parts and applies
			// MaxUploadSize itself; this only bounds what is read.
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, resolvers.CodeBadUserInput, "could not read the request body")
			return
		}
		if int64(len(body)) > limit {
			writeTooLarge(w, limit)
			return
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
			writeHTTPError(w, http.StatusBadRequest, resolvers.CodeBadUserInput,
				"batched requests (a JSON array) are not supported: send one operation per request")
			return
		}
		if !utf8.Valid(body) {
			writeHTTPError(w, http.StatusBadRequest, resolvers.CodeBadUserInput, "the request body is not valid UTF-8")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	writeHTTPError(w, http.StatusRequestEntityTooLarge, resolvers.CodeBadUserInput,
		fmt.Sprintf("the request body is larger than %s, the limit for its content type", sizeString(limit)))
}

func sizeString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// writeHTTPError answers a request refused before GraphQL runs with a
// GraphQL-shaped error, so clients read one format.
func writeHTTPError(w http.ResponseWriter, status int, code, msg string) {
	writeHTTPErrorExt(w, status, map[string]any{"code": code}, msg)
}

func writeHTTPErrorExt(w http.ResponseWriter, status int, ext map[string]any, msg string) {
	body, err := json.Marshal(map[string]any{"errors": []map[string]any{{"message": msg, "extensions": ext}}})
	if err != nil {
		body = []byte(`{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
