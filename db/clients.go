package db

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/graph/gid"
	"time"

	"github.com/jackc/pgx/v5"
)

// Client is one imported client (a couple and their event).
type Client struct {
	ID                int64
	OrgID             int64
	IntegrationID     int64
	ExternalID        string
	FirstName         string
	LastName          string
	MaidenName        string
	PartnerFirstName  string
	PartnerLastName   string
	Email             string
	EmailNormalized   string
	Phone             string
	EventDate         *time.Time
	Venue             string
	JobType           string
	Stage             *crm.Stage
	LeadSource        string
	BookingValueMinor *int64
	Currency          string
	GuestCount        *int32
	SourceCreatedAt   *time.Time
	SourceUpdatedAt   *time.Time
	Raw               json.RawMessage
	LastSeenRunID     *int64
	CreatedAt         time.Time
	UpdatedAt         time.Time
	DeletedAt         *time.Time
}

const clientColumns = `id, org_id, integration_id, external_id, first_name, last_name, maiden_name,
	partner_first_name, partner_last_name, email, email_normalized, phone, event_date, venue, job_type,
	stage, lead_source, booking_value_minor, currency, guest_count, source_created_at, source_updated_at,
	raw, last_seen_run_id, created_at, updated_at, deleted_at`

func scanClient(row pgx.Row) (*Client, error) {
	var c Client
	err := row.Scan(&c.ID, &c.OrgID, &c.IntegrationID, &c.ExternalID, &c.FirstName, &c.LastName, &c.MaidenName,
		&c.PartnerFirstName, &c.PartnerLastName, &c.Email, &c.EmailNormalized, &c.Phone, &c.EventDate, &c.Venue,
		&c.JobType, &c.Stage, &c.LeadSource, &c.BookingValueMinor, &c.Currency, &c.GuestCount, &c.SourceCreatedAt,
		&c.SourceUpdatedAt, &c.Raw, &c.LastSeenRunID, &c.CreatedAt, &c.UpdatedAt, &c.DeletedAt)
	if err != nil {
		return nil, interpretError(err)
	}
	return &c, nil
}

// ClientGetByID returns a client of orgID, deleted or not.
func (q *Queries) ClientGetByID(ctx context.Context, orgID, id int64) (*Client, error) {
	c, err := scanClient(q.exec.QueryRow(ctx,
		"SELECT "+clientColumns+" FROM clients WHERE id = $1 AND org_id = $2", id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error loading client %d: %w", id, err)
	}
	return c, nil
}

// ClientGetByIDAnyOrg returns a client whatever its organization; the caller
// checks access on the row's OrgID.
func (q *Queries) ClientGetByIDAnyOrg(ctx context.Context, id int64) (*Client, error) {
	c, err := scanClient(q.exec.QueryRow(ctx, "SELECT "+clientColumns+" FROM clients WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("error loading client %d: %w", id, err)
	}
	return c, nil
}

// DisplayName is how a vendor would name the couple, by the same rule as
// crm.Client.DisplayName: "Olivia & James Bennett", "Olivia Bennett & James
// Carter", or the email when there is no name.
func (c *Client) DisplayName() string {
	return (&crm.Client{
		FirstName: c.FirstName, LastName: c.LastName,
		PartnerFirstName: c.PartnerFirstName, PartnerLastName: c.PartnerLastName, Email: c.Email,
	}).DisplayName()
}

// GlobalID is the client's GraphQL id, rendered from the row so that a page
// of clients needs no resolver call per id.
func (c *Client) GlobalID() string { return gid.Encode("Client", c.ID) }
