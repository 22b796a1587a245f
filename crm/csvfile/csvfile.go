// Package csvfile imports clients from a CSV file a vendor exported from
// their CRM: HoneyBook's reports, a Light Blue export, or any CSV with a
// column mapping.
//
// The file is streamed, never held in memory. Stream reads it twice: a
// first pass checks it (UTF-8, a header with usable columns) and counts the
// records, so a bad file fails before anything is imported and pages carry
// an exact total; the second pass emits pages. The reader takes a UTF-8 BOM,
// "," or ";" or tab delimiters (sniffed from the header), quoted fields with
// newlines, CRLF line ends and ragged rows (missing cells are empty, extra
// cells are kept in the raw record).
//
// Invalid UTF-8 anywhere fails the whole file with crm.ErrBadFile, naming the
// line: such a file is almost always in a legacy encoding throughout, and
// importing it would store garbled names. Everything else wrong with a row
// (a bad email, an impossible date, no name and no email, an unreadable
// quote) rejects that record with its row number and the rest go on.
//
// Where a report has one row per person per project (HoneyBook's, Light
// Blue's), adjacent rows with the same project and event date are merged
// into one couple: the first row is the client, the second the partner.
// Rows of one project must be adjacent, as the reports list them.
package csvfile

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wedsync/crmhub/crm"
)

// PageSizeDefault is Config.PageSize's default.
const PageSizeDefault = 500

// Config configures a Connector.
type Config struct {
	// OpenFunc opens the file from the start; Stream calls it for each
	// pass. Required.
	OpenFunc func() (io.ReadCloser, error)
	// Format picks the preset. Required.
	Format Format
	// Mapping is field name → column header. For a preset it overrides
	// single fields of the preset's mapping (a header "" unmaps a field);
	// GENERIC_CSV needs one. Headers match case-insensitively.
	Mapping map[string]string
	// DayFirst reads 03/04/2026 as 3 April. Defaults to the preset's (true
	// for Light Blue only).
	DayFirst *bool
	// Currency is the ISO 4217 code of money without a symbol. Defaults to
	// the preset's (GBP for Light Blue, USD otherwise).
	Currency string
	// CountryCode is the calling code for phone numbers without one.
	// Defaults to the preset's (44 for Light Blue, 1 otherwise).
	CountryCode string
	// PageSize is how many records make a Page. Defaults to 500.
	PageSize int
}

// Connector reads one file. It implements crm.Connector; the request's
// Mode and Watermark are ignored (a file is always read whole).
type Connector struct {
	open     func() (io.ReadCloser, error)
	mapping  map[string]string
	preset   Preset
	pageSize int
	group    bool
}

var _ crm.Connector = (*Connector)(nil)

// New returns a Connector reading the file open opens, in format, with
// mapping (field → header) over the preset's.
func New(open func() (io.ReadCloser, error), format Format, mapping map[string]string) (*Connector, error) {
	return NewWithConfig(Config{OpenFunc: open, Format: format, Mapping: mapping})
}

// NewWithConfig returns a Connector for cfg.
func NewWithConfig(cfg Config) (*Connector, error) {
	if cfg.OpenFunc == nil {
		return nil, errors.New("invalid csv config: open func is required")
	}
	preset, ok := PresetFor(cfg.Format)
	if !ok {
		return nil, fmt.Errorf("invalid csv config: unknown format %q", cfg.Format)
	}
	for field, header := range cfg.Mapping {
		if !validField(field) {
			return nil, fmt.Errorf("invalid csv config: unknown field %q in mapping (fields: %s)", field, strings.Join(Fields(), ", "))
		}
		if strings.TrimSpace(header) == "" {
			delete(preset.Mapping, field)
		} else {
			preset.Mapping[field] = strings.TrimSpace(header)
		}
	}
	if len(preset.Mapping) == 0 {
		return nil, fmt.Errorf("invalid csv config: %s needs a column mapping", cfg.Format)
	}
	if !hasIdentity(slices.Collect(maps.Keys(preset.Mapping))) {
		return nil, errors.New("invalid csv config: the mapping must name a name or email column")
	}
	if cfg.DayFirst != nil {
		preset.DayFirst = *cfg.DayFirst
	}
	preset.Currency = cmp.Or(cfg.Currency, preset.Currency)
	preset.CountryCode = cmp.Or(cfg.CountryCode, preset.CountryCode)
	if cfg.PageSize < 0 {
		return nil, errors.New("invalid csv config: page size must not be negative")
	}
	_, group := preset.Mapping[FieldProject]
	return &Connector{open: cfg.OpenFunc, mapping: preset.Mapping, preset: preset, pageSize: cmp.Or(cfg.PageSize, PageSizeDefault), group: group}, nil
}

// Mapping returns the mapping in effect (field → header).
func (c *Connector) Mapping() map[string]string { return maps.Clone(c.mapping) }

func hasIdentity(fields []string) bool {
	for _, f := range fields {
		switch f {
		case FieldFirstName, FieldLastName, FieldFullName, FieldEmail:
			return true
		}
	}
	return false
}

// CheckCredentials opens the file and reads its header.
func (c *Connector) CheckCredentials(ctx context.Context) error {
	return c.scan(ctx, 0, true, func(record) error { return errStopScan })
}

var errStopScan = errors.New("stop")

// Stream checks the file, then emits it in pages. Page.Cursor is the last
// data row the page covers; a resumed stream skips rows up to it.
func (c *Connector) Stream(ctx context.Context, req crm.StreamRequest, fn func(context.Context, crm.Page) error) error {
	skip := 0
	if req.Resume != "" {
		n, err := strconv.Atoi(req.Resume)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid csv resume cursor %q: %w", req.Resume, crm.ErrInvalidRequest)
		}
		skip = n
	}
	total := 0
	if err := c.scan(ctx, 0, false, func(record) error { total++; return nil }); err != nil {
		return err
	}
	page := crm.Page{TotalEstimate: total}
	emitted := false
	flush := func(last int) error {
		page.Cursor = strconv.Itoa(last)
		emitted = true
		err := fn(ctx, page)
		page = crm.Page{TotalEstimate: total}
		return err
	}
	last := skip
	err := c.scan(ctx, skip, false, func(r record) error {
		if r.reject != nil {
			page.Rejects = append(page.Rejects, *r.reject)
		} else {
			page.Clients = append(page.Clients, r.client)
		}
		last = r.lastRow
		if len(page.Clients)+len(page.Rejects) >= c.pageSize {
			return flush(last)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(page.Clients)+len(page.Rejects) > 0 || !emitted {
		return flush(last)
	}
	return nil
}

// record is one finished group of rows: a client or a reject.
type record struct {
	client  crm.Client
	reject  *crm.Reject
	lastRow int
}

// row is one data row.
type row struct {
	n      int
	line   int
	fields []string
	key    string
}

// scan reads the file and calls emit for every record whose rows all come
// after skip. headerOnly stops after checking the header.
func (c *Connector) scan(ctx context.Context, skip int, headerOnly bool, emit func(record) error) error {
	f, err := c.open()
	if err != nil {
		return fmt.Errorf("error opening file: %w", errors.Join(crm.ErrBadFile, err))
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	head, _ := br.Peek(64 << 10)
	if bytes.IndexByte(head, 0) >= 0 {
		return fmt.Errorf("%w: this is not a text file (it contains NUL bytes); export a CSV file", crm.ErrBadFile)
	}
	cr := csv.NewReader(br)
	cr.Comma = sniffDelimiter(head)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the file is empty; it needs a header row", crm.ErrBadFile)
	}
	if err != nil {
		return fmt.Errorf("%w: cannot read the header row: %v", crm.ErrBadFile, err)
	}
	if bad := invalidUTF8(header); bad {
		return fmt.Errorf("%w: the file is not UTF-8 (invalid bytes on line 1); save it as \"CSV UTF-8\" and upload it again", crm.ErrBadFile)
	}
	cols, err := c.columns(header)
	if err != nil {
		return err
	}
	if headerOnly {
		return nil
	}
	p := parser{c: c, header: header, cols: cols}
	var group []row
	finish := func() error {
		if len(group) == 0 {
			return nil
		}
		g := group
		group = nil
		if g[0].n <= skip {
			return nil
		}
		return emit(p.record(g))
	}
	for n := 1; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			if err := finish(); err != nil {
				return err
			}
			if n > skip {
				if err := emit(record{lastRow: n, reject: &crm.Reject{Row: n, Reason: fmt.Sprintf("unreadable row (line %d): %v", perr.StartLine, perr.Err)}}); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("error reading file at row %d: %w", n, errors.Join(crm.ErrBadFile, err))
		}
		if invalidUTF8(fields) {
			return fmt.Errorf("%w: the file is not UTF-8 (invalid bytes in row %d, line %d); save it as \"CSV UTF-8\" and upload it again", crm.ErrBadFile, n, line)
		}
		if blank(fields) {
			continue
		}
		r := row{n: n, line: line, fields: fields}
		if c.group {
			r.key = strings.ToLower(strings.TrimSpace(p.get(r, FieldProject))) + "\x00" + strings.TrimSpace(p.get(r, FieldEventDate))
		}
		if len(group) > 0 && (!c.group || r.key != group[0].key || strings.TrimSpace(p.get(r, FieldProject)) == "") {
			if err := finish(); err != nil {
				return err
			}
		}
		group = append(group, r)
	}
	return finish()
}

// columns finds each mapped header in the file's header row.
func (c *Connector) columns(header []string) (map[string]int, error) {
	index := map[string]int{}
	for i, h := range header {
		k := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := index[k]; !dup {
			index[k] = i
		}
	}
	cols := map[string]int{}
	var found []string
	for field, h := range c.mapping {
		if i, ok := index[strings.ToLower(h)]; ok {
			cols[field] = i
			found = append(found, field)
		}
	}
	if !hasIdentity(found) {
		var want []string
		for _, f := range []string{FieldFullName, FieldFirstName, FieldLastName, FieldEmail} {
			if h, ok := c.mapping[f]; ok {
				want = append(want, strconv.Quote(h))
			}
		}
		return nil, fmt.Errorf("%w: the header row has none of the name or email columns the mapping expects (%s); the file's columns are %s",
			crm.ErrBadFile, strings.Join(want, ", "), quoteAll(header, 20))
	}
	return cols, nil
}

func quoteAll(ss []string, limit int) string {
	var out []string
	for i, s := range ss {
		if i == limit {
			out = append(out, "…")
			break
		}
		out = append(out, strconv.Quote(s))
	}
	return strings.Join(out, ", ")
}

// sniffDelimiter picks ",", ";" or tab: whichever appears most in the
// header line outside quotes.
func sniffDelimiter(head []byte) rune {
	counts := map[byte]int{}
	inQuote := false
	for _, b := range head {
		if b == '"' {
			inQuote = !inQuote
			continue
		}
		if inQuote {
			continue
		}
		if b == '\n' {
			break
		}
		if b == ',' || b == ';' || b == '\t' {
			counts[b]++
		}
	}
	best := byte(',')
	for _, b := range []byte{';', '\t'} {
		if counts[b] > counts[best] {
			best = b
		}
	}
	return rune(best)
}

func invalidUTF8(fields []string) bool {
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return true
		}
	}
	return false
}

func blank(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// rawRows renders rows as JSON objects keyed by header; cells past the
// header go under "_extra".
func rawRows(header []string, rows []row) json.RawMessage {
	out := make([]map[string]any, 0, len(rows))
	for _, r := range rows {
		m := make(map[string]any, len(header)+1)
		m["_row"] = r.n
		for i, v := range r.fields {
			if i < len(header) {
				m[header[i]] = v
			} else {
				extra, _ := m["_extra"].([]string)
				m["_extra"] = append(extra, v)
			}
		}
		out = append(out, m)
	}
	b, _ := json.Marshal(map[string]any{"rows": out})
	return b
}

func hashID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.Join(parts, "\x00"))))
	return "csv-" + hex.EncodeToString(h[:12])
}
