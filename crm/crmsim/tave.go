package crmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Tave / VSCO Workspace v2: API key in X-API-KEY (or Bearer), collections
// with {type, meta, items}, page/pageSize 10..100, errors {type, title,
// detail, status}.
//
// Assumed where the public docs are silent: the id filters (jobId on
// job-contact and event, id on address-book) take a comma-separated list,
// and sortOrder=asc|desc goes with sortBy (sortBy=modified defaults to
// descending, anything else to ascending).

const tavePrefix = "/tave/api/v2"

func (s *Simulator) routeTave() {
	s.mux.HandleFunc("GET "+tavePrefix+"/job", s.tave(s.taveJobs))
	s.mux.HandleFunc("GET "+tavePrefix+"/job/{id}", s.tave(s.taveJob))
	s.mux.HandleFunc("GET "+tavePrefix+"/job-contact", s.tave(s.taveJobContacts))
	s.mux.HandleFunc("GET "+tavePrefix+"/address-book", s.tave(s.taveContacts))
	s.mux.HandleFunc("GET "+tavePrefix+"/address-book/{id}", s.tave(s.taveContact))
	s.mux.HandleFunc("GET "+tavePrefix+"/event", s.tave(s.taveEvents))
	s.mux.HandleFunc("GET "+tavePrefix+"/lead-source", s.tave(s.taveLookup("lead-source", leadSources, 100)))
	s.mux.HandleFunc("GET "+tavePrefix+"/job-type", s.tave(s.taveLookup("job-type", jobTypes[7:], 200)))
	s.mux.HandleFunc(tavePrefix+"/", s.tave(func(w http.ResponseWriter, r *http.Request, _ view) {
		if r.Method != http.MethodGet {
			taveError(w, http.StatusNotImplemented, "not-implemented", "Not Implemented", "the simulator only reads")
			return
		}
		taveError(w, http.StatusNotFound, "unknown", "Not Found", "no such collection")
	}))
}

type taveErrorBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
}

func taveError(w http.ResponseWriter, status int, typ, title, detail string) {
	writeJSON(w, status, taveErrorBody{Type: typ, Title: title, Detail: detail, Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tave authenticates a request, applies the tenant's faults and hands the
// rest to h.
func (s *Simulator) tave(h func(http.ResponseWriter, *http.Request, view)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-KEY")
		if key == "" {
			key, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if key == "" {
			taveError(w, http.StatusUnauthorized, "unknown", "Unauthorized", "missing API key (X-API-KEY header)")
			return
		}
		t, err := s.parseCredential(key)
		if err != nil {
			taveError(w, http.StatusUnauthorized, "unknown", "Unauthorized", "invalid API key")
			return
		}
		f, wait := s.applyFaults(w, r, t)
		switch f {
		case faultRevoked:
			taveError(w, http.StatusUnauthorized, "unknown", "Unauthorized", "this API key has been revoked")
		case faultQuota, faultTooMany:
			w.Header().Set("Retry-After", retryAfterSeconds(wait))
			taveError(w, http.StatusTooManyRequests, "quota-limit", "Too Many Requests", "request quota exceeded")
		case fault500:
			taveError(w, http.StatusInternalServerError, "unknown", "Internal Server Error", "something went wrong")
		case fault503:
			taveError(w, http.StatusServiceUnavailable, "unknown", "Service Unavailable", "try again later")
		case faultStall:
			taveError(w, http.StatusGatewayTimeout, "unknown", "Gateway Timeout", "upstream timed out")
		case faultNone:
			h(w, r, s.view(t))
		}
	}
}

type taveMeta struct {
	CurrentPage int `json:"currentPage"`
	TotalPages  int `json:"totalPages"`
	TotalItems  int `json:"totalItems"`
	Rows        int `json:"rows"`
}

type taveCollection struct {
	Type  string   `json:"type"`
	Meta  taveMeta `json:"meta"`
	Items []any    `json:"items"`
}

type taveHref struct {
	Href string `json:"href"`
}

type taveLinks struct {
	Self taveHref `json:"self"`
}

func taveLink(collection, id string) taveLinks {
	return taveLinks{Self: taveHref{Href: "/api/v2/" + collection + "/" + id}}
}

// taveList serves one page of a collection of total items, item(q) building
// the q-th.
func taveList(w http.ResponseWriter, r *http.Request, typ string, total int, item func(q int) any) {
	page, size, msg := pageParams(r, "pageSize", 100, 10, 100)
	if msg != "" {
		taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", msg)
		return
	}
	c := taveCollection{Type: typ + "-collection", Meta: taveMeta{CurrentPage: page, TotalPages: (total + size - 1) / size, TotalItems: total, Rows: size}, Items: []any{}}
	for q := (page - 1) * size; q < min(page*size, total); q++ {
		c.Items = append(c.Items, item(q))
	}
	writeJSON(w, http.StatusOK, c)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func dateOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Format(time.DateOnly)
	return &s
}

type taveJob struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Name           string    `json:"name"`
	Title          string    `json:"title"`
	EventDate      *string   `json:"eventDate"`
	BookingDate    *string   `json:"bookingDate"`
	InquiryDate    *string   `json:"inquiryDate"`
	ClosedDate     *string   `json:"closedDate"`
	CompletedDate  *string   `json:"completedDate"`
	Stage          string    `json:"stage"`
	Closed         bool      `json:"closed"`
	JobTypeID      string    `json:"jobTypeId"`
	JobTypeName    string    `json:"jobTypeName"`
	LeadSourceID   string    `json:"leadSourceId"`
	LeadSourceName string    `json:"leadSourceName"`
	LeadStatusID   *string   `json:"leadStatusId"`
	LeadStatusName *string   `json:"leadStatusName"`
	GuestCount     any       `json:"guestCount"`
	LeadMaxBudget  int64     `json:"leadMaxBudget"`
	TotalRevenue   int64     `json:"totalRevenue"`
	Created        string    `json:"created"`
	Modified       string    `json:"modified"`
	Links          taveLinks `json:"links"`
}

func lookupID(list []string, name string, offset int) string {
	for i, n := range list {
		if n == name {
			return ulidFor(kindLookup, offset+i)
		}
	}
	return ulidFor(kindLookup, offset)
}

func coupleName(r record) string {
	a, b := r.partners[0], r.partners[1]
	switch {
	case a.first == "" && b.first == "":
		return "Unnamed inquiry"
	case a.last == b.last:
		return fmt.Sprintf("%s & %s %s", a.first, b.first, a.last)
	}
	return fmt.Sprintf("%s %s & %s %s", a.first, a.last, b.first, b.last)
}

func taveJobItem(r record) taveJob {
	j := taveJob{
		ID: TaveJobID(r.index), Type: "job",
		Name: coupleName(r), Title: coupleName(r) + " " + r.jobType,
		EventDate: dateOrNil(r.eventDate), InquiryDate: dateOrNil(r.inquiry), BookingDate: dateOrNil(r.booked),
		Stage: r.stage, Closed: r.closed,
		JobTypeID: lookupID(jobTypes[7:], r.jobType, 200), JobTypeName: r.jobType,
		LeadSourceID: lookupID(leadSources, r.leadSource, 100), LeadSourceName: r.leadSource,
		GuestCount: r.guestCount, LeadMaxBudget: r.value + 100_000, TotalRevenue: r.value,
		Created: rfc3339(r.created), Modified: rfc3339(r.modified),
		Links: taveLink("job", TaveJobID(r.index)),
	}
	if r.stage == "lead" {
		j.TotalRevenue = 0
		status := "Awaiting reply"
		if r.closed {
			status = "Lost"
		}
		id := ulidFor(kindLookup, 300)
		j.LeadStatusID, j.LeadStatusName = &id, &status
	}
	if r.closed {
		j.ClosedDate = dateOrNil(r.inquiry.AddDate(0, 1, 0))
	}
	if r.stage == "completed" {
		j.CompletedDate = dateOrNil(r.eventDate.AddDate(0, 1, 0))
	}
	switch r.mess {
	case messBadDate:
		j.EventDate = &r.eventDateRaw
	case messWrongType:
		j.GuestCount = fmt.Sprintf("about %d", r.guestCount)
	}
	return j
}

func (s *Simulator) taveJobs(w http.ResponseWriter, r *http.Request, v view) {
	q := r.URL.Query()
	sortBy, order := q.Get("sortBy"), q.Get("sortOrder")
	switch sortBy {
	case "", "created", "id":
		sortBy = "created"
	case "modified":
	default:
		taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "sortBy must be one of created, modified, id")
		return
	}
	desc := sortBy == "modified"
	switch order {
	case "":
	case "asc", "desc":
		desc = order == "desc"
	default:
		taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "sortOrder must be asc or desc")
		return
	}
	index := func(q int) int { return q }
	if sortBy == "created" && desc {
		index = func(q int) int { return v.total - 1 - q }
	}
	if sortBy == "modified" {
		// The order is computed a page at a time: fetch this page's slice
		// of the newest-first order.
		page, size, msg := pageParams(r, "pageSize", 100, 10, 100)
		if msg == "" {
			lo, hi := min((page-1)*size, v.total), min(page*size, v.total)
			from := lo
			if !desc {
				from = v.total - hi
			}
			got := v.byModifiedDesc(from, hi-lo)
			index = func(q int) int {
				if desc {
					return got[q-from]
				}
				return got[v.total-1-q-from]
			}
		}
	}
	taveList(w, r, "job", v.total, func(q int) any { return taveJobItem(v.record(index(q))) })
}

func (s *Simulator) taveJob(w http.ResponseWriter, r *http.Request, v view) {
	kind, i, ok := parseULID(r.PathValue("id"))
	if !ok || kind != kindJob || i >= v.total {
		taveError(w, http.StatusNotFound, "unknown", "Not Found", "no such job")
		return
	}
	writeJSON(w, http.StatusOK, taveJobItem(v.record(i)))
}

type tavePhone struct {
	Formatted   string  `json:"formatted"`
	E164        string  `json:"e164"`
	Extension   *string `json:"extension"`
	TelURI      string  `json:"telUri"`
	CountryCode string  `json:"countryCode"`
}

type taveAddress struct {
	StreetAddress string `json:"streetAddress"`
	Village       string `json:"village"`
	City          string `json:"city"`
	State         string `json:"state"`
	PostalCode    string `json:"postalCode"`
	Country       string `json:"country"`
}

type taveContact struct {
	ID             string       `json:"id"`
	Type           string       `json:"type"`
	Kind           string       `json:"kind"`
	FirstName      string       `json:"firstName"`
	LastName       string       `json:"lastName"`
	MaidenName     string       `json:"maidenName"`
	Name           string       `json:"name"`
	Email          string       `json:"email"`
	SecondaryEmail *string      `json:"secondaryEmail"`
	CellPhone      *tavePhone   `json:"cellPhone"`
	HomePhone      *tavePhone   `json:"homePhone"`
	WorkPhone      *tavePhone   `json:"workPhone"`
	MailingAddress *taveAddress `json:"mailingAddress"`
	Address        *taveAddress `json:"address"`
	Anniversary    *string      `json:"anniversary"`
	Birthdate      *string      `json:"birthdate"`
	PrivacyOptIn   bool         `json:"privacyOptIn"`
	PreviousClient bool         `json:"previousClient"`
	CustomFields   []any        `json:"customFields"`
	TotalRevenue   int64        `json:"totalRevenue"`
	Created        string       `json:"created"`
	Modified       string       `json:"modified"`
	Links          taveLinks    `json:"links"`
}

// taveContactItem is contact c: partner c%2 of job c/2.
func taveContactItem(v view, c int) taveContact {
	r := v.record(c / 2)
	p := r.partners[c%2]
	id := ulidFor(kindContact, c)
	ct := taveContact{
		ID: id, Type: "contact", Kind: "person",
		FirstName: p.first, LastName: p.last, MaidenName: p.maiden,
		Name: strings.TrimSpace(p.first + " " + p.last), Email: p.email,
		PrivacyOptIn: hash64(c, 11)%2 == 0, CustomFields: []any{},
		Created: rfc3339(r.created), Modified: rfc3339(r.modified),
		Links: taveLink("address-book", id),
	}
	if p.e164 != "" {
		ct.CellPhone = &tavePhone{Formatted: p.formatted, E164: p.e164, TelURI: "tel:" + p.e164, CountryCode: "US"}
	}
	if c%2 == 0 {
		ct.TotalRevenue = r.value
		ad := strings.Split(r.venue.address, ", ")
		if len(ad) == 3 {
			st := strings.Fields(ad[2])
			ct.MailingAddress = &taveAddress{StreetAddress: fmt.Sprintf("%d %s", 10+hash64(c, 12)%900, "Maple Ave"), City: ad[1], State: st[0], PostalCode: st[len(st)-1], Country: "US"}
		}
	}
	return ct
}

type taveJobContact struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	JobID     string    `json:"jobId"`
	ContactID string    `json:"contactId"`
	Client    bool      `json:"client"`
	JobRoles  []string  `json:"jobRoles"`
	RoleKinds []string  `json:"roleKinds"`
	Created   string    `json:"created"`
	Modified  string    `json:"modified"`
	Links     taveLinks `json:"links"`
}

func taveJobContactItem(v view, c int) taveJobContact {
	r := v.record(c / 2)
	role := "Partner"
	if c%2 == 0 {
		role = "Client"
	}
	id := ulidFor(kindJobContact, c)
	return taveJobContact{
		ID: id, Type: "job-contact", JobID: TaveJobID(c / 2), ContactID: ulidFor(kindContact, c),
		Client: true, JobRoles: []string{role}, RoleKinds: []string{"client"},
		Created: rfc3339(r.created), Modified: rfc3339(r.modified), Links: taveLink("job-contact", id),
	}
}

// filterIndexes turns a comma-separated id filter into record indexes of
// one kind, skipping ids that do not exist. ok is false for a malformed id.
func filterIndexes(list string, kind byte, limit int) ([]int, bool) {
	var out []int
	for _, id := range idList(list) {
		k, i, ok := parseULID(id)
		if !ok {
			return nil, false
		}
		if k == kind && i < limit {
			out = append(out, i)
		}
	}
	return out, true
}

func (s *Simulator) taveJobContacts(w http.ResponseWriter, r *http.Request, v view) {
	q := r.URL.Query()
	if q.Get("jobId") == "" && q.Get("contactId") == "" {
		taveList(w, r, "job-contact", 2*v.total, func(q int) any { return taveJobContactItem(v, q) })
		return
	}
	var cs []int
	if q.Get("jobId") != "" {
		jobs, ok := filterIndexes(q.Get("jobId"), kindJob, v.total)
		if !ok {
			taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "jobId must be job ids")
			return
		}
		for _, j := range jobs {
			cs = append(cs, 2*j, 2*j+1)
		}
	}
	if q.Get("contactId") != "" {
		contacts, ok := filterIndexes(q.Get("contactId"), kindContact, 2*v.total)
		if !ok {
			taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "contactId must be contact ids")
			return
		}
		if q.Get("jobId") == "" {
			cs = contacts
		} else {
			keep := map[int]bool{}
			for _, c := range contacts {
				keep[c] = true
			}
			var both []int
			for _, c := range cs {
				if keep[c] {
					both = append(both, c)
				}
			}
			cs = both
		}
	}
	taveList(w, r, "job-contact", len(cs), func(q int) any { return taveJobContactItem(v, cs[q]) })
}

func (s *Simulator) taveContacts(w http.ResponseWriter, r *http.Request, v view) {
	ids := r.URL.Query().Get("id")
	if ids == "" {
		taveList(w, r, "contact", 2*v.total, func(q int) any { return taveContactItem(v, q) })
		return
	}
	cs, ok := filterIndexes(ids, kindContact, 2*v.total)
	if !ok {
		taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "id must be contact ids")
		return
	}
	taveList(w, r, "contact", len(cs), func(q int) any { return taveContactItem(v, cs[q]) })
}

func (s *Simulator) taveContact(w http.ResponseWriter, r *http.Request, v view) {
	kind, c, ok := parseULID(r.PathValue("id"))
	if !ok || kind != kindContact || c >= 2*v.total {
		taveError(w, http.StatusNotFound, "unknown", "Not Found", "no such contact")
		return
	}
	writeJSON(w, http.StatusOK, taveContactItem(v, c))
}

type taveLocation struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

type taveEvent struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"`
	JobID     string        `json:"jobId"`
	Name      string        `json:"name"`
	StartDate *string       `json:"startDate"`
	Location  *taveLocation `json:"location"`
	Created   string        `json:"created"`
	Modified  string        `json:"modified"`
	Links     taveLinks     `json:"links"`
}

func taveEventItem(v view, i int) taveEvent {
	r := v.record(i)
	id := ulidFor(kindEvent, i)
	return taveEvent{
		ID: id, Type: "event", JobID: TaveJobID(i), Name: "Ceremony & Reception",
		StartDate: dateOrNil(r.eventDate),
		Location:  &taveLocation{ID: ulidFor(kindLookup, 400+int(hash64(i, 1)>>4%uint64(len(venues)))), Address: r.venue.name + ", " + r.venue.address},
		Created:   rfc3339(r.created), Modified: rfc3339(r.modified), Links: taveLink("event", id),
	}
}

func (s *Simulator) taveEvents(w http.ResponseWriter, r *http.Request, v view) {
	ids := r.URL.Query().Get("jobId")
	if ids == "" {
		taveList(w, r, "event", v.total, func(q int) any { return taveEventItem(v, q) })
		return
	}
	jobs, ok := filterIndexes(ids, kindJob, v.total)
	if !ok {
		taveError(w, http.StatusBadRequest, "validation-error", "Validation Failed", "jobId must be job ids")
		return
	}
	taveList(w, r, "event", len(jobs), func(q int) any { return taveEventItem(v, jobs[q]) })
}

type taveLookupItem struct {
	ID    string    `json:"id"`
	Type  string    `json:"type"`
	Name  string    `json:"name"`
	Links taveLinks `json:"links"`
}

func (s *Simulator) taveLookup(typ string, names []string, offset int) func(http.ResponseWriter, *http.Request, view) {
	return func(w http.ResponseWriter, r *http.Request, _ view) {
		taveList(w, r, typ, len(names), func(q int) any {
			id := ulidFor(kindLookup, offset+q)
			return taveLookupItem{ID: id, Type: typ, Name: names[q], Links: taveLink(typ, id)}
		})
	}
}
