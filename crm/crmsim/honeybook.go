package crmsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HoneyBook v3: an OAuth2 token endpoint, Bearer tokens that expire,
// page/per_page (max 100, default 25) with {data, pagination}, errors in
// {error, is_timeout, error_type, error_message, error_data}.
//
// Assumed where the public docs are silent: a project carries its
// workspace_id and created_at; GET /workspaces takes an ids filter (a
// comma-separated list); pagination.last_page is a boolean.

const (
	hbPrefix      = "/honeybook/api/v3"
	hbTokenPath   = "/honeybook/oauth2/token"
	jwtBearerType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

func (s *Simulator) routeHoneyBook() {
	s.mux.HandleFunc("POST "+hbTokenPath, s.hbToken)
	s.mux.HandleFunc("GET "+hbPrefix+"/projects", s.hb(s.hbProjects))
	s.mux.HandleFunc("GET "+hbPrefix+"/projects/{id}", s.hb(s.hbProject))
	s.mux.HandleFunc("GET "+hbPrefix+"/workspaces", s.hb(s.hbWorkspaces))
	s.mux.HandleFunc("GET "+hbPrefix+"/workspaces/{id}", s.hb(s.hbWorkspace))
	s.mux.HandleFunc("GET "+hbPrefix+"/workspaces/{id}/members", s.hb(s.hbMembers))
	s.mux.HandleFunc(hbPrefix+"/", s.hb(func(w http.ResponseWriter, _ *http.Request, _ view) {
		hbError(w, http.StatusNotFound, "HBObjectNotFoundError", "not found", false)
	}))
}

type hbErrorBody struct {
	Error        bool           `json:"error"`
	IsTimeout    bool           `json:"is_timeout"`
	ErrorType    string         `json:"error_type"`
	ErrorMessage string         `json:"error_message"`
	ErrorData    map[string]any `json:"error_data"`
}

func hbError(w http.ResponseWriter, status int, typ, msg string, timeout bool) {
	writeJSON(w, status, hbErrorBody{Error: true, IsTimeout: timeout, ErrorType: typ, ErrorMessage: msg, ErrorData: map[string]any{"fields": []string{}}})
}

// writeHBFault answers a request the fault suffixes failed. It reports
// false when the request should go on.
func writeHBFault(w http.ResponseWriter, f fault, wait time.Duration) bool {
	switch f {
	case faultNone:
		return false
	case faultRevoked:
		hbError(w, http.StatusUnauthorized, "HBInvalidJWTError", "the app's access has been revoked", false)
	case faultQuota, faultTooMany:
		w.Header().Set("Retry-After", retryAfterSeconds(wait))
		hbError(w, http.StatusTooManyRequests, "HBRateLimitError", "too many requests", false)
	case fault500:
		hbError(w, http.StatusInternalServerError, "HBInternalError", "internal error", false)
	case fault503:
		hbError(w, http.StatusServiceUnavailable, "HBServiceUnavailableError", "request timed out", true)
	case faultStall:
		hbError(w, http.StatusGatewayTimeout, "HBTimeoutError", "request timed out", true)
	}
	return true
}

// The access token carries the client id and expiry, signed, so the
// simulator remembers no tokens.
func (s *Simulator) signToken(cred string, exp int64) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(cred)) + "." + strconv.FormatInt(exp, 10)
	mac := hmac.New(sha256.New, []byte(s.cfg.TokenSecret))
	mac.Write([]byte(payload))
	return "hbat." + payload + "." + hex.EncodeToString(mac.Sum(nil))[:32]
}

func (s *Simulator) verifyToken(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != "hbat" {
		return "", fmt.Errorf("malformed access token")
	}
	if s.signToken(mustDecode(parts[1]), atoi64(parts[2])) != tok {
		return "", fmt.Errorf("invalid access token")
	}
	if s.cfg.NowFunc().Unix() >= atoi64(parts[2]) {
		return "", fmt.Errorf("access token expired")
	}
	return mustDecode(parts[1]), nil
}

func mustDecode(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return string(b)
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// hbToken is the OAuth2 token endpoint (client credentials). The client
// authenticates with client_id and client_secret (form or Basic auth), or
// with a JWT client_assertion whose "sub" (or "iss") names the client; the
// simulator accepts any secret and does not check the JWT's signature.
func (s *Simulator) hbToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "body must be form-encoded"})
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "grant_type must be client_credentials"})
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if a := r.PostForm.Get("client_assertion"); a != "" {
		if r.PostForm.Get("client_assertion_type") != jwtBearerType {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "client_assertion_type must be " + jwtBearerType})
			return
		}
		sub, ok := jwtSubject(a)
		if !ok {
			writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "client_assertion is not a JWT with a sub claim"})
			return
		}
		clientID, secret = sub, "jwt"
	}
	if clientID == "" || secret == "" {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "client authentication failed"})
		return
	}
	t, err := s.parseCredential(clientID)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "unknown client"})
		return
	}
	f, wait := s.applyFaults(w, r, t)
	if f == faultRevoked {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "the app's access has been revoked"})
		return
	}
	if f == faultCancelled || f == faultReset || writeHBFault(w, f, wait) {
		return
	}
	exp := s.cfg.NowFunc().Add(s.cfg.TokenTTL).Unix()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": s.signToken(t.credential, exp),
		"token_type":   "Bearer",
		"expires_in":   int(s.cfg.TokenTTL / time.Second),
	})
}

func jwtSubject(a string) (string, bool) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Sub string `json:"sub"`
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &claims) != nil {
		return "", false
	}
	if claims.Sub != "" {
		return claims.Sub, true
	}
	return claims.Iss, claims.Iss != ""
}

func (s *Simulator) hb(h func(http.ResponseWriter, *http.Request, view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			hbError(w, http.StatusUnauthorized, "HBInvalidJWTError", "missing bearer token", false)
			return
		}
		cred, err := s.verifyToken(tok)
		if err != nil {
			hbError(w, http.StatusUnauthorized, "HBInvalidJWTError", err.Error(), false)
			return
		}
		t, err := s.parseCredential(cred)
		if err != nil {
			hbError(w, http.StatusUnauthorized, "HBInvalidJWTError", "unknown client", false)
			return
		}
		f, wait := s.applyFaults(w, r, t)
		if f == faultCancelled || f == faultReset || writeHBFault(w, f, wait) {
			return
		}
		h(w, r, s.view(t))
	}
}

type hbPagination struct {
	Page       int  `json:"page"`
	PerPage    int  `json:"per_page"`
	TotalItems int  `json:"total_items"`
	TotalPages int  `json:"total_pages"`
	LastPage   bool `json:"last_page"`
}

type hbList struct {
	Data       []any        `json:"data"`
	Pagination hbPagination `json:"pagination"`
}

func hbPage(w http.ResponseWriter, r *http.Request, total int, item func(q int) any) {
	page, size, msg := pageParams(r, "per_page", 25, 1, 100)
	if msg != "" {
		hbError(w, http.StatusBadRequest, "HBValidationError", msg, false)
		return
	}
	pages := (total + size - 1) / size
	l := hbList{Data: []any{}, Pagination: hbPagination{Page: page, PerPage: size, TotalItems: total, TotalPages: pages, LastPage: page >= pages}}
	for q := (page - 1) * size; q < min(page*size, total); q++ {
		l.Data = append(l.Data, item(q))
	}
	writeJSON(w, http.StatusOK, l)
}

type hbProject struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	ProjectDate        any    `json:"project_date"`
	ProjectEndDate     any    `json:"project_end_date"`
	ProjectTimeStart   string `json:"project_time_start"`
	ProjectTimeEnd     string `json:"project_time_end"`
	ProjectTimezone    string `json:"project_timezone"`
	ProjectLocation    string `json:"project_location"`
	ProjectDetails     string `json:"project_details"`
	GuestCount         any    `json:"guest_count"`
	Budget             int64  `json:"budget"`
	ProjectTypeID      string `json:"project_type_id"`
	LeadSourceID       string `json:"lead_source_id"`
	LeadSourceOpenText string `json:"lead_source_open_text"`
	WorkspaceID        string `json:"workspace_id"`
	CreatedAt          string `json:"created_at"`
}

func hbProjectItem(r record) hbProject {
	date := r.eventDate.Format(time.DateOnly)
	p := hbProject{
		ID: HoneyBookProjectID(r.index), Name: coupleName(r) + " " + r.jobType,
		ProjectDate: date, ProjectEndDate: date, ProjectTimeStart: "16:00", ProjectTimeEnd: "23:00",
		ProjectTimezone: "America/New_York", ProjectLocation: r.venue.name + ", " + r.venue.address,
		ProjectDetails: "Ceremony and reception", GuestCount: r.guestCount, Budget: r.value,
		ProjectTypeID: objectIDFor(kindLookup, 200+len(r.jobType)), LeadSourceID: objectIDFor(kindLookup, 100+len(r.leadSource)),
		LeadSourceOpenText: r.leadSource, WorkspaceID: objectIDFor(kindWorkspace, r.index),
		CreatedAt: r.created.UTC().Format(time.RFC3339),
	}
	switch r.mess {
	case messBadDate:
		p.ProjectDate = r.eventDateRaw
	case messWrongType:
		p.GuestCount = fmt.Sprintf("about %d", r.guestCount)
	}
	return p
}

func parseHBTime(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func (s *Simulator) hbProjects(w http.ResponseWriter, r *http.Request, v view) {
	q := r.URL.Query()
	lo, hi := 0, v.total
	if a := q.Get("created_after"); a != "" {
		t, ok := parseHBTime(a)
		if !ok {
			hbError(w, http.StatusBadRequest, "HBValidationError", "created_after must be an ISO 8601 date or time", false)
			return
		}
		lo = v.firstCreatedAfter(t)
	}
	if b := q.Get("created_before"); b != "" {
		t, ok := parseHBTime(b)
		if !ok {
			hbError(w, http.StatusBadRequest, "HBValidationError", "created_before must be an ISO 8601 date or time", false)
			return
		}
		hi = v.firstCreatedFrom(t)
	}
	hi = max(hi, lo)
	desc := false
	switch q.Get("sort") {
	case "", "created_at":
	case "-created_at":
		desc = true
	default:
		hbError(w, http.StatusBadRequest, "HBValidationError", "sort must be created_at or -created_at", false)
		return
	}
	hbPage(w, r, hi-lo, func(q int) any {
		if desc {
			return hbProjectItem(v.record(hi - 1 - q))
		}
		return hbProjectItem(v.record(lo + q))
	})
}

func (s *Simulator) hbProject(w http.ResponseWriter, r *http.Request, v view) {
	kind, i, ok := parseObjectID(r.PathValue("id"))
	if !ok || kind != kindProject || i >= v.total {
		hbError(w, http.StatusNotFound, "HBObjectNotFoundError", "project not found", false)
		return
	}
	writeJSON(w, http.StatusOK, hbProjectItem(v.record(i)))
}

type hbWorkspace struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	ProjectID string `json:"project_id"`
	CreatedAt string `json:"created_at"`
}

func hbWorkspaceItem(r record) hbWorkspace {
	status := "client"
	switch {
	case r.stage == "lead" && r.closed:
		status = "lead_archived"
	case r.stage == "lead" && hash64(r.index, 13)%2 == 0:
		status = "lead_sent"
	case r.stage == "lead":
		status = "lead"
	case r.stage == "completed":
		status = "client_archived"
	}
	return hbWorkspace{ID: objectIDFor(kindWorkspace, r.index), Name: coupleName(r), Status: status,
		ProjectID: HoneyBookProjectID(r.index), CreatedAt: r.created.UTC().Format(time.RFC3339)}
}

func (s *Simulator) hbWorkspaces(w http.ResponseWriter, r *http.Request, v view) {
	ids := idList(r.URL.Query().Get("ids"))
	if len(ids) == 0 {
		hbPage(w, r, v.total, func(q int) any { return hbWorkspaceItem(v.record(q)) })
		return
	}
	var idx []int
	for _, id := range ids {
		kind, i, ok := parseObjectID(id)
		if !ok {
			hbError(w, http.StatusBadRequest, "HBValidationError", "ids must be workspace ids", false)
			return
		}
		if kind == kindWorkspace && i < v.total {
			idx = append(idx, i)
		}
	}
	hbPage(w, r, len(idx), func(q int) any { return hbWorkspaceItem(v.record(idx[q])) })
}

func (s *Simulator) hbWorkspace(w http.ResponseWriter, r *http.Request, v view) {
	kind, i, ok := parseObjectID(r.PathValue("id"))
	if !ok || kind != kindWorkspace || i >= v.total {
		hbError(w, http.StatusNotFound, "HBObjectNotFoundError", "workspace not found", false)
		return
	}
	writeJSON(w, http.StatusOK, hbWorkspaceItem(v.record(i)))
}

type hbContact struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name"`
	Email        string `json:"email"`
	PhoneNumber  string `json:"phone_number"`
	Address      string `json:"address"`
	CompanyName  string `json:"company_name"`
	Source       string `json:"source"`
	CustomFields []any  `json:"custom_fields"`
}

type hbMember struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"`
	ContactID string     `json:"contact_id"`
	Contact   *hbContact `json:"contact,omitempty"`
}

func (s *Simulator) hbMembers(w http.ResponseWriter, r *http.Request, v view) {
	kind, i, ok := parseObjectID(r.PathValue("id"))
	if !ok || kind != kindWorkspace || i >= v.total {
		// HoneyBook answers 404 both for a missing workspace and for one the
		// app may not see.
		hbError(w, http.StatusNotFound, "HBObjectNotFoundError", "workspace not found", false)
		return
	}
	rec := v.record(i)
	include := r.URL.Query().Get("include") == "contact"
	members := make([]hbMember, 0, 3)
	for p, pr := range rec.partners {
		c := &hbContact{ID: objectIDFor(kindContact, 2*i+p), Kind: "client", FirstName: pr.first, LastName: pr.last,
			Email: pr.email, PhoneNumber: pr.formatted, Source: rec.leadSource, CustomFields: []any{}}
		if p == 1 && hash64(i, 14)%3 == 0 {
			c.PhoneNumber = pr.e164
		}
		members = append(members, hbMember{ID: objectIDFor(kindMember, 2*i+p), Role: "client", ContactID: c.ID, Contact: c})
	}
	vendor := &hbContact{ID: objectIDFor(kindVendor, 0), Kind: "vendor", FirstName: "Alex", LastName: "Rivera",
		Email: "hello@lumenandlace.studio", PhoneNumber: "(212) 555-0100", CompanyName: "Lumen & Lace Studio", CustomFields: []any{}}
	members = append(members, hbMember{ID: objectIDFor(kindMember, 2*v.total+i), Role: "owner", ContactID: vendor.ID, Contact: vendor})
	if !include {
		for m := range members {
			members[m].Contact = nil
		}
	}
	hbPage(w, r, len(members), func(q int) any { return members[q] })
}
