package csvfile

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wedsync/crmhub/crm"
)

type parser struct {
	c      *Connector
	header []string
	cols   map[string]int
}

// get is a row's cell for a field, or "" when the field is unmapped or the
// row is short.
func (p *parser) get(r row, field string) string {
	i, ok := p.cols[field]
	if !ok || i >= len(r.fields) {
		return ""
	}
	return strings.TrimSpace(r.fields[i])
}

// first is the first non-empty cell for a field across a group's rows.
func (p *parser) first(rows []row, field string) string {
	for _, r := range rows {
		if v := p.get(r, field); v != "" {
			return v
		}
	}
	return ""
}

type person struct{ first, last, maiden string }

func (p *parser) person(r row) person {
	ps := person{first: p.get(r, FieldFirstName), last: p.get(r, FieldLastName), maiden: p.get(r, FieldMaidenName)}
	if ps.first == "" && ps.last == "" {
		ps.first, ps.last = splitName(p.get(r, FieldFullName))
	}
	return ps
}

// splitName splits "Mary Jane Smith" into "Mary Jane" and "Smith".
func splitName(full string) (string, string) {
	full = strings.Join(strings.Fields(full), " ")
	i := strings.LastIndexByte(full, ' ')
	if i < 0 {
		return full, ""
	}
	return full[:i], full[i+1:]
}

// record turns a group of rows (one couple) into a client or a reject.
func (p *parser) record(rows []row) record {
	last := rows[len(rows)-1].n
	cl, reason := p.client(rows)
	cl.Raw = rawRows(p.header, rows)
	if reason != "" {
		return record{lastRow: last, reject: &crm.Reject{Row: rows[0].n, ExternalID: cl.ExternalID, Reason: reason, Raw: cl.Raw}}
	}
	return record{lastRow: last, client: cl}
}

func (p *parser) client(rows []row) (crm.Client, string) {
	var cl crm.Client
	a := p.person(rows[0])
	cl.FirstName, cl.LastName, cl.MaidenName = a.first, a.last, a.maiden
	if len(rows) > 1 {
		b := p.person(rows[1])
		cl.PartnerFirstName, cl.PartnerLastName = b.first, b.last
	} else {
		cl.PartnerFirstName, cl.PartnerLastName = p.get(rows[0], FieldPartnerFirst), p.get(rows[0], FieldPartnerLast)
		if cl.PartnerFirstName == "" && cl.PartnerLastName == "" {
			cl.PartnerFirstName, cl.PartnerLastName = splitName(p.get(rows[0], FieldPartnerFull))
		}
	}
	for _, r := range rows {
		raw := p.get(r, FieldEmail)
		email, err := crm.NormalizeEmail(raw)
		if err != nil {
			return cl, rowReason(rows, r, err.Error())
		}
		if cl.Email == "" && email != "" {
			cl.Email, cl.EmailNormalized = raw, email
		}
		if cl.Phone == "" {
			if ph, err := crm.NormalizePhone(p.get(r, FieldPhone), p.c.preset.CountryCode); err == nil {
				cl.Phone = ph
			}
		}
	}
	dateRaw := p.first(rows, FieldEventDate)
	cl.ExternalID = p.first(rows, FieldExternalID)
	if cl.ExternalID == "" {
		key := p.first(rows, FieldProject)
		if key == "" {
			key = cmp.Or(cl.EmailNormalized, cl.FirstName+" "+cl.LastName+" "+cl.PartnerFirstName+" "+cl.PartnerLastName)
		}
		cl.ExternalID = hashID(key, dateRaw)
	}
	if dateRaw != "" {
		d, err := p.date(dateRaw)
		if err != nil {
			return cl, "invalid event date: " + err.Error()
		}
		cl.EventDate = &d
	}
	cl.Venue = p.first(rows, FieldVenue)
	cl.JobType = p.first(rows, FieldJobType)
	cl.LeadSource = p.first(rows, FieldLeadSource)
	if other := p.first(rows, FieldLeadSourceOther); other != "" {
		if cl.LeadSource == "" {
			cl.LeadSource = other
		} else {
			cl.LeadSource += ": " + other
		}
	}
	cl.Stage = stageOf(p.first(rows, FieldStage), crm.Stage(p.c.preset.Stage))
	if p.first(rows, FieldBookedAt) != "" && cl.Stage == crm.StageLead && p.first(rows, FieldStage) == "" {
		cl.Stage = crm.StageBooked
	}
	if v := p.first(rows, FieldBookingValue); v != "" {
		minor, cur, err := parseMoney(v, p.c.preset.Currency)
		if err != nil {
			return cl, "invalid booking value: " + err.Error()
		}
		cl.BookingValueMinor, cl.Currency = &minor, cur
	}
	if v := p.first(rows, FieldGuestCount); v != "" {
		n, err := strconv.ParseInt(strings.ReplaceAll(v, ",", ""), 10, 32)
		if err != nil || n < 0 {
			return cl, fmt.Sprintf("invalid guest count %q", crm.Truncate(v, 40))
		}
		n32 := int32(n)
		cl.GuestCount = &n32
	}
	if v := p.first(rows, FieldCreatedAt); v != "" {
		if d, err := p.date(v); err == nil {
			cl.SourceCreatedAt = &d
		}
	}
	if err := cl.Validate(); err != nil {
		return cl, err.Error()
	}
	return cl, ""
}

func rowReason(rows []row, r row, reason string) string {
	if len(rows) == 1 {
		return reason
	}
	return fmt.Sprintf("row %d: %s", r.n, reason)
}

var (
	isoLayouts = []string{time.DateOnly, time.RFC3339, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006/01/02",
		"Jan 2, 2006", "January 2, 2006", "Jan 2 2006", "2 Jan 2006", "2 January 2006", "Mon, Jan 2, 2006", "Monday, January 2, 2006"}
	monthFirst = []string{"01/02/2006", "1/2/2006", "01/02/06", "1/2/06", "01-02-2006", "1/2/2006 15:04", "01/02/2006 15:04", "1/2/2006 3:04 PM", "01/02/2006 3:04 PM"}
	dayFirst   = []string{"02/01/2006", "2/1/2006", "02/01/06", "2/1/06", "02.01.2006", "2.1.2006", "02-01-2006", "02/01/2006 15:04", "2/1/2006 15:04"}
)

func (p *parser) date(s string) (time.Time, error) {
	layouts := append([]string{}, isoLayouts...)
	if p.c.preset.DayFirst {
		layouts = append(layouts, dayFirst...)
	} else {
		layouts = append(layouts, monthFirst...)
	}
	return crm.ParseDate(s, layouts...)
}

func stageOf(s string, def crm.Stage) crm.Stage {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return cmp.Or(def, crm.StageLead)
	case "lead", "inquiry", "enquiry", "new", "new lead", "prospect", "lead_sent", "proposal sent", "pending":
		return crm.StageLead
	case "booked", "confirmed", "client", "won", "active", "contract signed":
		return crm.StageBooked
	case "fulfilled", "fulfillment", "fulfilment", "shot", "in progress", "editing":
		return crm.StageFulfilled
	case "completed", "complete", "delivered", "done", "client_archived", "archived client":
		return crm.StageCompleted
	case "lost", "cancelled", "canceled", "declined", "lead_archived", "dead", "closed":
		return crm.StageLost
	}
	return cmp.Or(def, crm.StageLead)
}

var symbols = map[string]string{"$": "USD", "£": "GBP", "€": "EUR", "A$": "AUD", "C$": "CAD", "NZ$": "NZD"}

// parseMoney reads "$6,500.00", "£1,250", "1.250,50 €" or "6500" as minor
// units and a currency.
func parseMoney(s, def string) (int64, string, error) {
	v := strings.TrimSpace(s)
	cur := def
	for _, sym := range []string{"NZ$", "A$", "C$", "$", "£", "€"} {
		if strings.Contains(v, sym) {
			cur = symbols[sym]
			v = strings.ReplaceAll(v, sym, "")
			break
		}
	}
	for _, code := range []string{"USD", "GBP", "EUR", "AUD", "CAD", "NZD"} {
		if strings.Contains(strings.ToUpper(v), code) {
			cur = code
			v = strings.ReplaceAll(strings.ToUpper(v), code, "")
		}
	}
	v = strings.ReplaceAll(strings.TrimSpace(v), " ", "")
	neg := strings.HasPrefix(v, "-") || (strings.HasPrefix(v, "(") && strings.HasSuffix(v, ")"))
	v = strings.Trim(v, "-()")
	// "1.250,50": a comma after the last dot is the decimal mark.
	if c, d := strings.LastIndexByte(v, ','), strings.LastIndexByte(v, '.'); c > d && len(v)-c-1 <= 2 {
		v = strings.ReplaceAll(v, ".", "")
		v = strings.Replace(v, ",", ".", 1)
	} else {
		v = strings.ReplaceAll(v, ",", "")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e13 || v == "" {
		return 0, "", fmt.Errorf("%q is not an amount", crm.Truncate(s, 40))
	}
	minor := int64(math.Round(f * 100))
	if neg {
		minor = -minor
	}
	return minor, cur, nil
}
