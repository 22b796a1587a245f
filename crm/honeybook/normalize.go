package honeybook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wedsync/crmhub/crm"
)

type project struct {
	ID                 string          `json:"id"`
	Name               string          `json:"name"`
	ProjectDate        json.RawMessage `json:"project_date"`
	ProjectLocation    string          `json:"project_location"`
	GuestCount         json.RawMessage `json:"guest_count"`
	Budget             *int64          `json:"budget"`
	ProjectTypeID      string          `json:"project_type_id"`
	LeadSourceOpenText string          `json:"lead_source_open_text"`
	WorkspaceID        string          `json:"workspace_id"`
	CreatedAt          string          `json:"created_at"`

	raw     json.RawMessage
	row     int
	created time.Time
}

type workspace struct {
	ID     string `json:"id"`
	Status string `json:"status"`

	raw json.RawMessage
}

type member struct {
	Role    string `json:"role"`
	Contact *struct {
		Kind        string `json:"kind"`
		FirstName   string `json:"first_name"`
		LastName    string `json:"last_name"`
		Email       string `json:"email"`
		PhoneNumber string `json:"phone_number"`
	} `json:"contact"`
}

// members is one workspace's members; denied is set when HoneyBook answered
// 404, which for a workspace the project points at means "no permission".
type members struct {
	list   []member
	raw    []json.RawMessage
	denied bool
}

var stages = map[string]crm.Stage{
	"lead": crm.StageLead, "lead_sent": crm.StageLead, "lead_archived": crm.StageLost,
	"client": crm.StageBooked, "client_archived": crm.StageCompleted,
}

// page turns one page of projects into clients and rejects, reading the
// page's workspaces and their members.
func (c *Connector) page(ctx context.Context, items []json.RawMessage, rowBase int) (crm.Page, time.Time, error) {
	p := crm.Page{Clients: make([]crm.Client, 0, len(items))}
	var newest time.Time
	var projects []project
	for n, item := range items {
		row := rowBase + n + 1
		var pr project
		if err := json.Unmarshal(item, &pr); err != nil {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(item, &id)
			p.Rejects = append(p.Rejects, crm.Reject{Row: row, ExternalID: id.ID, Reason: "malformed project: " + err.Error(), Raw: item})
			continue
		}
		pr.raw, pr.row = item, row
		if t, err := time.Parse(time.RFC3339Nano, pr.CreatedAt); err == nil {
			pr.created = t
			if t.After(newest) {
				newest = t
			}
		}
		projects = append(projects, pr)
	}
	if len(projects) == 0 {
		return p, newest, nil
	}
	wsIDs := make([]string, 0, len(projects))
	for _, pr := range projects {
		if pr.WorkspaceID != "" {
			wsIDs = append(wsIDs, pr.WorkspaceID)
		}
	}
	workspaces := make(map[string]workspace, len(wsIDs))
	for lo := 0; lo < len(wsIDs); lo += c.cfg.MaxIDsPerRequest {
		chunk := wsIDs[lo:min(lo+c.cfg.MaxIDsPerRequest, len(wsIDs))]
		var l list
		if err := c.get(ctx, "/workspaces", url.Values{"ids": {strings.Join(chunk, ",")}, "per_page": {"100"}}, &l); err != nil {
			return p, newest, err
		}
		for _, raw := range l.Data {
			var ws workspace
			if json.Unmarshal(raw, &ws) == nil {
				ws.raw = raw
				workspaces[ws.ID] = ws
			}
		}
	}
	mem := make([]members, len(projects))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for n, pr := range projects {
		if pr.WorkspaceID == "" {
			continue
		}
		g.Go(func() error {
			m, err := c.members(gctx, pr.WorkspaceID)
			mem[n] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return p, newest, err
	}
	for n, pr := range projects {
		cl, reason := c.normalize(pr, workspaces[pr.WorkspaceID], mem[n])
		if reason != "" {
			p.Rejects = append(p.Rejects, crm.Reject{Row: pr.row, ExternalID: pr.ID, Reason: reason, Raw: cl.Raw})
			continue
		}
		p.Clients = append(p.Clients, cl)
	}
	return p, newest, nil
}

func (c *Connector) members(ctx context.Context, workspaceID string) (members, error) {
	var m members
	q := url.Values{"include": {"contact"}, "per_page": {"100"}}
	for page := 1; ; page++ {
		q.Set("page", fmt.Sprint(page))
		var l list
		err := c.get(ctx, "/workspaces/"+url.PathEscape(workspaceID)+"/members", q, &l)
		var herr *crm.HTTPError
		if errors.As(err, &herr) && herr.Status == http.StatusNotFound {
			return members{denied: true}, nil
		}
		if err != nil {
			return m, err
		}
		for _, raw := range l.Data {
			var mb member
			if json.Unmarshal(raw, &mb) == nil {
				m.list = append(m.list, mb)
				m.raw = append(m.raw, raw)
			}
		}
		if page >= l.Pagination.TotalPages || len(l.Data) == 0 {
			return m, nil
		}
	}
}

// normalize maps a project, its workspace and members to a client. A
// non-empty reason means the record is rejected.
func (c *Connector) normalize(pr project, ws workspace, m members) (crm.Client, string) {
	// The parts are valid JSON already: join them without re-encoding.
	rawJSON := make([]byte, 0, len(pr.raw)+len(ws.raw)+64+len(m.raw)*512)
	rawJSON = append(append(rawJSON, `{"project":`...), pr.raw...)
	if len(ws.raw) > 0 {
		rawJSON = append(append(rawJSON, `,"workspace":`...), ws.raw...)
	}
	rawJSON = append(rawJSON, `,"members":[`...)
	for n, r := range m.raw {
		if n > 0 {
			rawJSON = append(rawJSON, ',')
		}
		rawJSON = append(rawJSON, r...)
	}
	rawJSON = append(rawJSON, "]}"...)
	cl := crm.Client{ExternalID: pr.ID, Venue: strings.TrimSpace(pr.ProjectLocation), JobType: pr.ProjectTypeID,
		LeadSource: strings.TrimSpace(pr.LeadSourceOpenText), Raw: rawJSON}
	if m.denied {
		return cl, "no permission to read the project's workspace members (HoneyBook answered 404)"
	}
	var couple []member
	for _, mb := range m.list {
		if mb.Contact != nil && mb.Contact.Kind == "client" {
			couple = append(couple, mb)
		}
	}
	if len(couple) > 0 {
		cl.FirstName, cl.LastName = strings.TrimSpace(couple[0].Contact.FirstName), strings.TrimSpace(couple[0].Contact.LastName)
	}
	if len(couple) > 1 {
		cl.PartnerFirstName, cl.PartnerLastName = strings.TrimSpace(couple[1].Contact.FirstName), strings.TrimSpace(couple[1].Contact.LastName)
	}
	for _, mb := range couple {
		email, err := crm.NormalizeEmail(mb.Contact.Email)
		if err != nil {
			return cl, err.Error()
		}
		if cl.Email == "" && email != "" {
			cl.Email, cl.EmailNormalized = strings.TrimSpace(mb.Contact.Email), email
		}
		if cl.Phone == "" {
			if ph, err := crm.NormalizePhone(mb.Contact.PhoneNumber, c.cfg.DefaultCountryCode); err == nil {
				cl.Phone = ph
			}
		}
	}
	if len(pr.ProjectDate) > 0 && string(pr.ProjectDate) != "null" {
		var s string
		if err := json.Unmarshal(pr.ProjectDate, &s); err != nil {
			return cl, fmt.Sprintf("project_date %s is not a date", crm.Truncate(string(pr.ProjectDate), 40))
		}
		if s != "" {
			d, err := crm.ParseDate(s, time.DateOnly, time.RFC3339)
			if err != nil {
				return cl, "invalid project_date: " + err.Error()
			}
			cl.EventDate = &d
		}
	}
	cl.Stage = stages[ws.Status]
	if cl.Stage == "" {
		cl.Stage = crm.StageLead
	}
	if len(pr.GuestCount) > 0 && string(pr.GuestCount) != "null" {
		var n int32
		if err := json.Unmarshal(pr.GuestCount, &n); err != nil || n < 0 {
			return cl, fmt.Sprintf("guest_count %s is not a whole number", crm.Truncate(string(pr.GuestCount), 40))
		}
		cl.GuestCount = &n
	}
	if pr.Budget != nil {
		v := *pr.Budget
		cl.BookingValueMinor, cl.Currency = &v, c.cfg.Currency
	}
	if !pr.created.IsZero() {
		t := pr.created
		cl.SourceCreatedAt = &t
	}
	if err := cl.Validate(); err != nil {
		return cl, err.Error()
	}
	return cl, ""
}
