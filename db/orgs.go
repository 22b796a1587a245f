package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Organization is one vendor business.
type Organization struct {
	ID          int64
	Slug        string
	Name        string
	DataVersion int64
	CreatedAt   time.Time
}

const orgColumns = "id, slug, name, data_version, created_at"

func scanOrg(row pgx.Row) (*Organization, error) {
	var o Organization
	if err := row.Scan(&o.ID, &o.Slug, &o.Name, &o.DataVersion, &o.CreatedAt); err != nil {
		return nil, interpretError(err)
	}
	return &o, nil
}

// OrganizationCreateParams are the fields of a new organization.
type OrganizationCreateParams struct {
	Slug string
	Name string
}

// OrganizationCreate inserts an organization; a taken slug is ErrConflict.
func (q *Queries) OrganizationCreate(ctx context.Context, p *OrganizationCreateParams) (*Organization, error) {
	o, err := scanOrg(q.exec.QueryRow(ctx,
		"INSERT INTO organizations (slug, name) VALUES ($1, $2) RETURNING "+orgColumns, p.Slug, p.Name))
	if err != nil {
		return nil, fmt.Errorf("error creating organization %q: %w", p.Slug, err)
	}
	return o, nil
}

// OrganizationGetByID returns one organization.
func (q *Queries) OrganizationGetByID(ctx context.Context, id int64) (*Organization, error) {
	o, err := scanOrg(q.exec.QueryRow(ctx, "SELECT "+orgColumns+" FROM organizations WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("error loading organization %d: %w", id, err)
	}
	return o, nil
}

// OrganizationGetBySlug returns one organization.
func (q *Queries) OrganizationGetBySlug(ctx context.Context, slug string) (*Organization, error) {
	o, err := scanOrg(q.exec.QueryRow(ctx, "SELECT "+orgColumns+" FROM organizations WHERE slug = $1", slug))
	if err != nil {
		return nil, fmt.Errorf("error loading organization %q: %w", slug, err)
	}
	return o, nil
}

// OrganizationBumpDataVersion records that the organization's data changed,
// in the caller's transaction, and returns the new version.
func (q *Queries) OrganizationBumpDataVersion(ctx context.Context, id int64) (int64, error) {
	var v int64
	err := q.exec.QueryRow(ctx,
		"UPDATE organizations SET data_version = data_version + 1 WHERE id = $1 RETURNING data_version", id).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("error bumping data version of organization %d: %w", id, interpretError(err))
	}
	return v, nil
}
