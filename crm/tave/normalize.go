package tave

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wedsync/crmhub/crm"
)

type job struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	EventDate      *string         `json:"eventDate"`
	Stage          string          `json:"stage"`
	Closed         bool            `json:"closed"`
	JobTypeName    string          `json:"jobTypeName"`
	LeadSourceName string          `json:"leadSourceName"`
	GuestCount     json.RawMessage `json:"guestCount"`
	TotalRevenue   *int64          `json:"totalRevenue"`
	Created        string          `json:"created"`
	Modified       string          `json:"modified"`

	raw      json.RawMessage
	row      int
	modified time.Time
}

type jobContact struct {
	JobID     string   `json:"jobId"`
	ContactID string   `json:"contactId"`
	Client    bool     `json:"client"`
	RoleKinds []string `json:"roleKinds"`
}

type phone struct {
	E164 string `json:"e164"`
}

type contact struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	FirstName  string `json:"firstName"`
	LastName   string `json:"lastName"`
	MaidenName string `json:"maidenName"`
	Email      string `json:"email"`
	CellPhone  *phone `json:"cellPhone"`
	HomePhone  *phone `json:"homePhone"`
	WorkPhone  *phone `json:"workPhone"`

	raw json.RawMessage
}

type event struct {
	JobID    string `json:"jobId"`
	Location *struct {
		Address string `json:"address"`
	} `json:"location"`

	raw json.RawMessage
}

// decodeJobs decodes a page of jobs one by one, so a malformed job is a
// reject rather than a failed page. For INCREMENTAL it keeps only jobs
// modified after since, and stop reports that the page reached since.
func decodeJobs(items []json.RawMessage, rowBase int, incremental bool, since time.Time) (jobs []job, rejects []crm.Reject, newest time.Time, stop bool) {
	for n, item := range items {
		row := rowBase + n + 1
		var head struct {
			ID       string `json:"id"`
			Modified string `json:"modified"`
		}
		if err := json.Unmarshal(item, &head); err != nil {
			rejects = append(rejects, crm.Reject{Row: row, Reason: "malformed job: " + err.Error(), Raw: item})
			continue
		}
		mod, err := time.Parse(time.RFC3339Nano, head.Modified)
		if err != nil && incremental {
			rejects = append(rejects, crm.Reject{Row: row, ExternalID: head.ID, Reason: fmt.Sprintf("invalid modified %q", head.Modified), Raw: item})
			continue
		}
		if incremental && !mod.After(since) {
			return jobs, rejects, newest, true
		}
		if mod.After(newest) {
			newest = mod
		}
		var j job
		if err := json.Unmarshal(item, &j); err != nil {
			rejects = append(rejects, crm.Reject{Row: row, ExternalID: head.ID, Reason: "malformed job: " + jsonReason(err), Raw: item})
			continue
		}
		j.raw, j.row, j.modified = item, row, mod
		jobs = append(jobs, j)
	}
	return jobs, rejects, newest, false
}

func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s is a %s, not a %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

// join reads the page's job-contact links, contacts and events and turns
// each job into a client or a reject.
func (c *Connector) join(ctx context.Context, jobs []job) (crm.Page, error) {
	p := crm.Page{Clients: make([]crm.Client, 0, len(jobs))}
	if len(jobs) == 0 {
		return p, nil
	}
	jobIDs := make([]string, len(jobs))
	for i, j := range jobs {
		jobIDs[i] = j.ID
	}
	// Events do not depend on contacts: read them alongside.
	var eventItems []json.RawMessage
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		eventItems, err = c.listByIDs(gctx, "/event", "jobId", jobIDs)
		return err
	})
	links, err := c.listByIDs(gctx, "/job-contact", "jobId", jobIDs)
	if err != nil {
		_ = g.Wait()
		return p, err
	}
	byJob := map[string][]string{}
	var contactIDs []string
	for _, raw := range links {
		var l jobContact
		if json.Unmarshal(raw, &l) != nil || l.JobID == "" || l.ContactID == "" {
			continue
		}
		if !l.Client && !slices.Contains(l.RoleKinds, "client") && !slices.Contains(l.RoleKinds, "customer") {
			continue
		}
		byJob[l.JobID] = append(byJob[l.JobID], l.ContactID)
		contactIDs = append(contactIDs, l.ContactID)
	}
	contactItems, err := c.listByIDs(gctx, "/address-book", "id", contactIDs)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return p, err
	}
	contacts := make(map[string]contact, len(contactItems))
	for _, raw := range contactItems {
		var ct contact
		if json.Unmarshal(raw, &ct) == nil && ct.ID != "" {
			ct.raw = raw
			contacts[ct.ID] = ct
		}
	}
	events := map[string]event{}
	for _, raw := range eventItems {
		var ev event
		if json.Unmarshal(raw, &ev) != nil {
			continue
		}
		if _, seen := events[ev.JobID]; !seen || (events[ev.JobID].Location == nil && ev.Location != nil) {
			ev.raw = raw
			events[ev.JobID] = ev
		}
	}
	for _, j := range jobs {
		var couple []contact
		for _, id := range byJob[j.ID] {
			if ct, ok := contacts[id]; ok && (ct.Kind == "" || ct.Kind == "person") {
				couple = append(couple, ct)
			}
		}
		cl, reason := c.normalize(j, couple, events[j.ID])
		if reason != "" {
			p.Rejects = append(p.Rejects, crm.Reject{Row: j.row, ExternalID: j.ID, Reason: reason, Raw: cl.Raw})
			continue
		}
		p.Clients = append(p.Clients, cl)
	}
	return p, nil
}

var stages = map[string]crm.Stage{
	"lead": crm.StageLead, "booked": crm.StageBooked, "fulfillment": crm.StageFulfilled, "completed": crm.StageCompleted,
}

// normalize maps one job and its couple to a client. A non-empty reason
// means the record is rejected.
func (c *Connector) normalize(j job, couple []contact, ev event) (crm.Client, string) {
	// The parts are valid JSON already: join them without re-encoding.
	rawJSON := make([]byte, 0, len(j.raw)+len(ev.raw)+64+len(couple)*1024)
	rawJSON = append(append(append(rawJSON, `{"job":`...), j.raw...), `,"contacts":[`...)
	for n, ct := range couple {
		if n > 0 {
			rawJSON = append(rawJSON, ',')
		}
		rawJSON = append(rawJSON, ct.raw...)
	}
	rawJSON = append(rawJSON, ']')
	if len(ev.raw) > 0 {
		rawJSON = append(append(rawJSON, `,"event":`...), ev.raw...)
	}
	rawJSON = append(rawJSON, '}')
	cl := crm.Client{ExternalID: j.ID, JobType: j.JobTypeName, LeadSource: j.LeadSourceName, Raw: rawJSON}
	var primary, partner contact
	if len(couple) > 0 {
		primary = couple[0]
	}
	if len(couple) > 1 {
		partner = couple[1]
	}
	cl.FirstName, cl.LastName, cl.MaidenName = strings.TrimSpace(primary.FirstName), strings.TrimSpace(primary.LastName), strings.TrimSpace(primary.MaidenName)
	cl.PartnerFirstName, cl.PartnerLastName = strings.TrimSpace(partner.FirstName), strings.TrimSpace(partner.LastName)
	for _, ct := range couple {
		email, err := crm.NormalizeEmail(ct.Email)
		if err != nil {
			return cl, err.Error()
		}
		if cl.Email == "" && email != "" {
			cl.Email, cl.EmailNormalized = strings.TrimSpace(ct.Email), email
		}
	}
	for _, ct := range couple {
		for _, ph := range []*phone{ct.CellPhone, ct.HomePhone, ct.WorkPhone} {
			if cl.Phone != "" || ph == nil {
				continue
			}
			if e, err := crm.NormalizePhone(ph.E164, "1"); err == nil {
				cl.Phone = e
			}
		}
	}
	if j.EventDate != nil && *j.EventDate != "" {
		d, err := crm.ParseDate(*j.EventDate, time.DateOnly, time.RFC3339)
		if err != nil {
			return cl, "invalid eventDate: " + err.Error()
		}
		cl.EventDate = &d
	}
	if ev.Location != nil {
		cl.Venue = strings.TrimSpace(ev.Location.Address)
	}
	cl.Stage = stages[strings.ToLower(j.Stage)]
	if cl.Stage == "" {
		cl.Stage = crm.StageLead
	}
	if j.Closed && cl.Stage == crm.StageLead {
		cl.Stage = crm.StageLost
	}
	if len(j.GuestCount) > 0 && string(j.GuestCount) != "null" {
		var n int32
		if err := json.Unmarshal(j.GuestCount, &n); err != nil || n < 0 {
			return cl, fmt.Sprintf("guestCount %s is not a whole number", crm.Truncate(string(j.GuestCount), 40))
		}
		cl.GuestCount = &n
	}
	if j.TotalRevenue != nil {
		v := *j.TotalRevenue
		cl.BookingValueMinor, cl.Currency = &v, c.cfg.Currency
	}
	if t, err := time.Parse(time.RFC3339Nano, j.Created); err == nil {
		cl.SourceCreatedAt = &t
	}
	if !j.modified.IsZero() {
		t := j.modified
		cl.SourceUpdatedAt = &t
	} else if t, err := time.Parse(time.RFC3339Nano, j.Modified); err == nil {
		cl.SourceUpdatedAt = &t
	}
	if err := cl.Validate(); err != nil {
		return cl, err.Error()
	}
	return cl, ""
}
