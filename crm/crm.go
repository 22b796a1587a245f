// Package crm defines what every CRM connector provides: a stream of pages of
// normalised client records that an import can resume after its last
// committed page. Connectors live in sub-packages (tave, honeybook, csvfile);
// crmsim is the simulator the connectors are tested against. Nothing in this
// package tree touches the database.
package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Mode is how much of the CRM a stream reads.
type Mode string

const (
	// ModeFull reads every record the CRM holds.
	ModeFull Mode = "FULL"
	// ModeIncremental reads only what changed since the watermark of the last
	// successful run, in the provider's own way (sortBy=modified for Tave,
	// created_after for HoneyBook).
	ModeIncremental Mode = "INCREMENTAL"
)

// Stage is where a client stands in the vendor's pipeline.
type Stage string

// The stages, the same across every CRM.
const (
	StageLead      Stage = "LEAD"
	StageBooked    Stage = "BOOKED"
	StageFulfilled Stage = "FULFILLED"
	StageCompleted Stage = "COMPLETED"
	StageLost      Stage = "LOST"
)

// Client is one normalised client record: a couple (or a single person) and
// their event, whatever CRM it came from. Optional values are nil or "".
type Client struct {
	// ExternalID is the CRM's own id; together with the integration it is the
	// record's key.
	ExternalID       string
	FirstName        string
	LastName         string
	MaidenName       string
	PartnerFirstName string
	PartnerLastName  string
	// Email is as the CRM gave it; EmailNormalized is trimmed and lower-cased,
	// the secondary key for finding one couple in two CRMs.
	Email           string
	EmailNormalized string
	// Phone is in E.164 ("+14155550123"), or "" when there is none.
	Phone string
	// EventDate is the wedding (event) date at midnight UTC.
	EventDate  *time.Time
	Venue      string
	JobType    string
	Stage      Stage
	LeadSource string
	// BookingValueMinor is in the currency's minor units (cents).
	BookingValueMinor *int64
	// Currency is an ISO 4217 code; "" when BookingValueMinor is nil.
	Currency        string
	GuestCount      *int32
	SourceCreatedAt *time.Time
	SourceUpdatedAt *time.Time
	// Raw is the record as the CRM sent it, kept whole.
	Raw json.RawMessage
}

// Reject is a record that could not be normalised. It never stops a stream.
type Reject struct {
	// Row is the record's 1-based position in the stream (the data row number
	// for a file, header excluded).
	Row int
	// ExternalID is the CRM's id of the record, when it had one.
	ExternalID string
	// Reason says in plain words what was wrong ("missing name and email").
	Reason string
	// Raw is the record as it came, for the vendor to fix at the source.
	Raw json.RawMessage
}

// Page is one batch of records, the unit an import commits.
type Page struct {
	Clients []Client
	Rejects []Reject
	// Cursor resumes the stream right after this page: pass it back as
	// StreamRequest.Resume once the page is committed.
	Cursor string
	// Watermark is the highest change marker seen so far in this stream; an
	// import that succeeds stores it for its next INCREMENTAL run.
	Watermark string
	// TotalEstimate is the number of records the CRM reports for the whole
	// stream, or -1 when it does not say.
	TotalEstimate int
}

// StreamRequest says what to read.
type StreamRequest struct {
	Mode Mode
	// Resume is the Cursor of the last committed page of this run, or "" to
	// start at the beginning.
	Resume string
	// Watermark is the Watermark of the last successful run, used by
	// ModeIncremental; "" reads everything.
	Watermark string
}

// Connector reads one CRM account.
type Connector interface {
	// CheckCredentials makes one cheap request to tell whether the
	// credentials work; it returns an error wrapping ErrAuth when they don't.
	CheckCredentials(ctx context.Context) error
	// Stream reads pages in order and calls fn for each one. It stops at the
	// first error fn returns and returns it. Transient CRM failures are
	// retried inside; what is left is returned wrapping ErrUnavailable, ErrAuth
	// or ErrBadFile.
	Stream(ctx context.Context, req StreamRequest, fn func(context.Context, Page) error) error
}

// The errors an import branches on. Connectors wrap them with context; test
// with errors.Is.
var (
	// ErrAuth means the CRM refused the credentials (401/403): retrying will
	// not help, the vendor must reconnect.
	ErrAuth = errors.New("crm: credentials refused")
	// ErrUnavailable means the CRM kept failing transiently (5xx, timeouts,
	// resets, rate limits) past the connector's own retries; a later attempt
	// may succeed.
	ErrUnavailable = errors.New("crm: unavailable")
	// ErrBadFile means an uploaded file cannot be read at all (not CSV, not
	// UTF-8, no header).
	ErrBadFile = errors.New("crm: bad file")
	// ErrInvalidRequest means the CRM rejected the request as malformed
	// (400); it is a bug or a misconfiguration, not worth retrying.
	ErrInvalidRequest = errors.New("crm: invalid request")
)

// HTTPError is a response from a CRM that the connector gave up on. It wraps
// one of the sentinel errors and never carries credentials.
type HTTPError struct {
	// Kind is ErrAuth, ErrUnavailable or ErrInvalidRequest.
	Kind error
	// Status is the HTTP status code, or 0 for a transport failure.
	Status int
	// Message is the CRM's own error text, trimmed.
	Message string
}

func (e *HTTPError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%v: %s", e.Kind, e.Message)
	}
	return fmt.Sprintf("%v: HTTP %d: %s", e.Kind, e.Status, e.Message)
}

// Unwrap lets errors.Is match the sentinel.
func (e *HTTPError) Unwrap() error { return e.Kind }
