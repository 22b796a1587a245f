package csvfile_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/csvfile"
)

func openFile(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(filepath.Join("testdata", path)) }
}

func openBytes(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

type result struct {
	clients []crm.Client
	rejects []crm.Reject
	pages   []crm.Page
}

var errStop = context.Canceled

func read(t *testing.T, c *csvfile.Connector, resume string, maxPages int) (result, error) {
	t.Helper()
	var r result
	err := c.Stream(t.Context(), crm.StreamRequest{Mode: crm.ModeFull, Resume: resume}, func(_ context.Context, p crm.Page) error {
		r.clients = append(r.clients, p.Clients...)
		r.rejects = append(r.rejects, p.Rejects...)
		r.pages = append(r.pages, p)
		if maxPages > 0 && len(r.pages) == maxPages {
			return errStop
		}
		return nil
	})
	return r, err
}

func mustRead(t *testing.T, open func() (io.ReadCloser, error), f csvfile.Format, mapping map[string]string) result {
	t.Helper()
	c, err := csvfile.New(open, f, mapping)
	require.NoError(t, err)
	r, err := read(t, c, "", 0)
	require.NoError(t, err)
	return r
}

func date(s string) *time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return &d
}

func TestHoneyBookLeads(t *testing.T) {
	t.Parallel()
	// BOM, CRLF, a doubled quote in a quoted field, one row per person.
	r := mustRead(t, openFile("honeybook_leads.csv"), csvfile.HoneyBookLeads, nil)
	require.Len(t, r.clients, 2)
	a := r.clients[0]
	require.Equal(t, "Olivia", a.FirstName)
	require.Equal(t, "Bennett", a.LastName)
	require.Equal(t, "James", a.PartnerFirstName)
	require.Equal(t, "Carter", a.PartnerLastName)
	require.Equal(t, "olivia.bennett@gmail.com", a.EmailNormalized)
	require.Equal(t, "+14155550134", a.Phone)
	require.Equal(t, date("2026-06-13"), a.EventDate)
	require.Equal(t, crm.StageLead, a.Stage)
	require.Equal(t, int64(650000), *a.BookingValueMinor)
	require.Equal(t, "USD", a.Currency)
	require.Equal(t, "Instagram: saw the barn reel", a.LeadSource)
	require.Equal(t, date("2025-09-02"), a.SourceCreatedAt)
	require.Contains(t, string(a.Raw), "James Carter")

	b := r.clients[1]
	require.Equal(t, "priya.shah@yahoo.com", b.EmailNormalized)
	require.Equal(t, "Sam", b.PartnerFirstName)
	require.Equal(t, crm.StageBooked, b.Stage)

	require.Len(t, r.rejects, 1)
	require.Equal(t, 5, r.rejects[0].Row)
	require.Contains(t, r.rejects[0].Reason, "invalid email")
	require.Equal(t, 3, r.pages[0].TotalEstimate)

	// The same file imported again keys the same records.
	again := mustRead(t, openFile("honeybook_leads.csv"), csvfile.HoneyBookLeads, nil)
	require.Equal(t, a.ExternalID, again.clients[0].ExternalID)
	require.NotEqual(t, a.ExternalID, b.ExternalID)
}

func TestHoneyBookBooked(t *testing.T) {
	t.Parallel()
	// Quoted newlines in the project name; an impossible date.
	r := mustRead(t, openFile("honeybook_booked.csv"), csvfile.HoneyBookBooked, nil)
	require.Len(t, r.clients, 2)
	require.Equal(t, "Emma", r.clients[0].FirstName)
	require.Equal(t, "Noah", r.clients[0].PartnerFirstName)
	require.Equal(t, crm.StageBooked, r.clients[0].Stage)
	require.Equal(t, date("2026-09-19"), r.clients[0].EventDate)
	require.Equal(t, int64(825000), *r.clients[0].BookingValueMinor)
	require.Equal(t, "Wedding", r.clients[0].JobType)
	require.Equal(t, "Leah", r.clients[1].FirstName)
	require.Empty(t, r.clients[1].PartnerFirstName)
	require.Equal(t, int64(90000), *r.clients[1].BookingValueMinor)
	require.Len(t, r.rejects, 1)
	require.Equal(t, 3, r.rejects[0].Row)
	require.Contains(t, r.rejects[0].Reason, "invalid event date")
}

func TestLightBlue(t *testing.T) {
	t.Parallel()
	// Semicolons, CRLF, dd/mm/yyyy, UK phones.
	r := mustRead(t, openFile("lightblue.csv"), csvfile.LightBlue, nil)
	require.Len(t, r.clients, 2)
	a := r.clients[0]
	require.Equal(t, "Harper", a.FirstName)
	require.Equal(t, "Hughes", a.MaidenName)
	require.Equal(t, "Finn", a.PartnerFirstName)
	require.Equal(t, "+447700900123", a.Phone)
	require.Equal(t, date("2026-06-13"), a.EventDate)
	require.Equal(t, "Pippin Hill Farm, North Garden", a.Venue)
	require.Equal(t, crm.StageBooked, a.Stage)
	require.Equal(t, "Hitched", a.LeadSource)
	require.Equal(t, date("2026-09-05"), r.clients[1].EventDate)
	require.Equal(t, crm.StageLead, r.clients[1].Stage)
	require.Len(t, r.rejects, 1)
	require.Equal(t, 5, r.rejects[0].Row)
	require.Equal(t, "missing name and email", r.rejects[0].Reason)

	// The assumed headers can be overridden one by one.
	m := csvfile.PresetMapping(csvfile.LightBlue)
	require.Equal(t, "ShootDate", m[csvfile.FieldEventDate])
}

var genericMapping = map[string]string{
	csvfile.FieldExternalID: "Client ID", csvfile.FieldFullName: "Client", csvfile.FieldPartnerFull: "Partner",
	csvfile.FieldEmail: "e-mail", csvfile.FieldPhone: "Mobile", csvfile.FieldEventDate: "Wedding Date",
	csvfile.FieldVenue: "Venue", csvfile.FieldBookingValue: "Package Value", csvfile.FieldGuestCount: "Guests", csvfile.FieldStage: "Status",
}

func TestGeneric(t *testing.T) {
	t.Parallel()
	// Ragged rows (short and long), a blank row, bad cells.
	r := mustRead(t, openFile("generic.csv"), csvfile.Generic, genericMapping)
	require.Len(t, r.clients, 3)
	a := r.clients[0]
	require.Equal(t, "D-1001", a.ExternalID)
	require.Equal(t, "Sophia", a.FirstName)
	require.Equal(t, "Liam", a.PartnerFirstName)
	require.Equal(t, "+16175550100", a.Phone)
	require.Equal(t, int64(480000), *a.BookingValueMinor)
	require.Equal(t, int32(120), *a.GuestCount)
	require.Equal(t, crm.StageBooked, a.Stage)
	require.Equal(t, "D-1002", r.clients[1].ExternalID)
	require.Equal(t, crm.StageLead, r.clients[1].Stage)
	require.Equal(t, crm.StageCompleted, r.clients[2].Stage)
	require.Contains(t, string(r.clients[2].Raw), "extra-cell")
	require.Len(t, r.rejects, 2)
	require.Equal(t, 3, r.rejects[0].Row)
	require.Contains(t, r.rejects[0].Reason, "guest count")
	require.Equal(t, "D-1005", r.rejects[1].ExternalID)
	require.Equal(t, "missing name and email", r.rejects[1].Reason)

	_, err := csvfile.New(openFile("generic.csv"), csvfile.Generic, nil)
	require.ErrorContains(t, err, "needs a column mapping")
	_, err = csvfile.New(openFile("generic.csv"), csvfile.Generic, map[string]string{"nickname": "Nick"})
	require.ErrorContains(t, err, "unknown field")
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		open    func() (io.ReadCloser, error)
		format  csvfile.Format
		message string
	}{
		"latin1":    {openFile("latin1.csv"), csvfile.HoneyBookBooked, "not UTF-8"},
		"empty":     {openBytes(nil), csvfile.HoneyBookBooked, "empty"},
		"bomOnly":   {openBytes([]byte("\xef\xbb\xbf")), csvfile.HoneyBookBooked, "empty"},
		"binary":    {openBytes([]byte("PK\x03\x04\x00\x00binary")), csvfile.HoneyBookBooked, "not a text file"},
		"noColumns": {openBytes([]byte("a,b,c\n1,2,3\n")), csvfile.HoneyBookBooked, "none of the name or email columns"},
		"lateBadUTF8": {openBytes([]byte("First Name,Last Name,Email\n" + strings.Repeat("Ann,Lee,ann@example.com\n", 2000) + "Zo\xeb,M,z@example.com\n")),
			csvfile.HoneyBookBooked, "row 2001"},
		"openFails": {func() (io.ReadCloser, error) { return nil, os.ErrNotExist }, csvfile.HoneyBookBooked, "error opening file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := csvfile.New(tc.open, tc.format, nil)
			require.NoError(t, err)
			pages := 0
			err = c.Stream(t.Context(), crm.StreamRequest{}, func(context.Context, crm.Page) error { pages++; return nil })
			require.ErrorIs(t, err, crm.ErrBadFile)
			require.ErrorContains(t, err, tc.message)
			require.Zero(t, pages, "a bad file fails before any page")
		})
	}
}

// rows generates a HoneyBook leads report of n projects, two rows each,
// without holding it in memory.
type rows struct {
	n, i int
	buf  bytes.Buffer
}

func (r *rows) Read(p []byte) (int, error) {
	for r.buf.Len() < len(p) && r.i <= r.n {
		if r.i == 0 {
			r.buf.WriteString("Project Name,Full Name,Email Address,Project Date,Total Project Value\r\n")
		} else {
			for _, who := range []string{"Ann Lee", "Bo Kim"} {
				fmt.Fprintf(&r.buf, "Wedding %d,%s,%s%d@example.com,\"Jun %d, 2026\",\"$1,000\"\r\n", r.i, who, strings.Fields(who)[0], r.i, 1+r.i%28)
			}
		}
		r.i++
	}
	if r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return r.buf.Read(p)
}

func (r *rows) Close() error { return nil }

func TestResume(t *testing.T) {
	t.Parallel()
	open := func() (io.ReadCloser, error) { return &rows{n: 95}, nil }
	c, err := csvfile.NewWithConfig(csvfile.Config{OpenFunc: open, Format: csvfile.HoneyBookLeads, PageSize: 10})
	require.NoError(t, err)
	first, err := read(t, c, "", 3)
	require.ErrorIs(t, err, errStop)
	require.Len(t, first.clients, 30)
	require.Equal(t, "60", first.pages[2].Cursor, "pages end on a couple's last row")
	rest, err := read(t, c, first.pages[2].Cursor, 0)
	require.NoError(t, err)
	all := append(first.clients, rest.clients...)
	require.Len(t, all, 95)
	seen := map[string]bool{}
	for _, cl := range all {
		require.False(t, seen[cl.ExternalID])
		seen[cl.ExternalID] = true
		require.Equal(t, "Bo", cl.PartnerFirstName)
	}
	require.Equal(t, 95, rest.pages[0].TotalEstimate)
}

func TestStreamsLargeFile(t *testing.T) {
	t.Parallel()
	open := func() (io.ReadCloser, error) { return &rows{n: 50_000}, nil }
	c, err := csvfile.New(open, csvfile.HoneyBookLeads, nil)
	require.NoError(t, err)
	n := 0
	err = c.Stream(t.Context(), crm.StreamRequest{}, func(_ context.Context, p crm.Page) error {
		n += len(p.Clients)
		require.Empty(t, p.Rejects)
		require.LessOrEqual(t, len(p.Clients), csvfile.PageSizeDefault)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 50_000, n)
}

func TestCheckCredentials(t *testing.T) {
	t.Parallel()
	c, err := csvfile.New(openFile("lightblue.csv"), csvfile.LightBlue, nil)
	require.NoError(t, err)
	require.NoError(t, c.CheckCredentials(t.Context()))
	c, err = csvfile.New(openFile("lightblue.csv"), csvfile.HoneyBookLeads, nil)
	require.NoError(t, err)
	require.ErrorIs(t, c.CheckCredentials(t.Context()), crm.ErrBadFile)
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"honeybook_leads.csv", "honeybook_booked.csv", "lightblue.csv", "generic.csv", "latin1.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		for format := range 4 {
			f.Add(b, uint8(format))
		}
	}
	f.Add([]byte("\"unterminated,quote\n"), uint8(0))
	f.Add([]byte("Full Name;Email Address\n\"a\"\"b\";x@y.z\r\n;\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		formats := csvfile.Formats()
		ft := formats[int(format)%len(formats)]
		var mapping map[string]string
		if ft == csvfile.Generic {
			mapping = genericMapping
		}
		c, err := csvfile.NewWithConfig(csvfile.Config{OpenFunc: openBytes(data), Format: ft, Mapping: mapping, PageSize: 3})
		require.NoError(t, err)
		rowsSeen := 0
		err = c.Stream(context.Background(), crm.StreamRequest{}, func(_ context.Context, p crm.Page) error {
			for _, cl := range p.Clients {
				require.NotEmpty(t, cl.ExternalID)
				require.NoError(t, cl.Validate())
			}
			for _, r := range p.Rejects {
				require.Positive(t, r.Row)
				require.NotEmpty(t, r.Reason)
			}
			rowsSeen += len(p.Clients) + len(p.Rejects)
			return nil
		})
		if err != nil {
			require.ErrorIs(t, err, crm.ErrBadFile)
		}
		require.LessOrEqual(t, rowsSeen, bytes.Count(data, []byte("\n"))+1)
	})
}
