package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Integration is one connected CRM account (or file source) of an
// organization. Credentials stay sealed; only the hint leaves this package's
// callers.
type Integration struct {
	ID                    int64
	OrgID                 int64
	Provider              string
	Name                  string
	BaseURL               *string
	CredentialsSealed     []byte
	CredentialsKeyID      *string
	CredentialHint        *string
	AutoSyncMinutes       *int32
	Status                string
	IncrementalCheckpoint *string
	LastSyncedAt          *time.Time
	LastRunID             *int64
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

const integrationColumns = `id, org_id, provider, name, base_url, credentials_sealed, credentials_key_id,
	credential_hint, auto_sync_minutes, status, incremental_checkpoint, last_synced_at, last_run_id,
	created_at, updated_at`

func scanIntegration(row pgx.Row) (*Integration, error) {
	var i Integration
	err := row.Scan(&i.ID, &i.OrgID, &i.Provider, &i.Name, &i.BaseURL, &i.CredentialsSealed, &i.CredentialsKeyID,
		&i.CredentialHint, &i.AutoSyncMinutes, &i.Status, &i.IncrementalCheckpoint, &i.LastSyncedAt, &i.LastRunID,
		&i.CreatedAt, &i.UpdatedAt)
	if err != nil {
		return nil, interpretError(err)
	}
	return &i, nil
}

// IntegrationCreateParams are the fields of a new integration.
type IntegrationCreateParams struct {
	OrgID             int64
	Provider          string
	Name              string
	BaseURL           *string
	CredentialsSealed []byte
	CredentialsKeyID  *string
	CredentialHint    *string
	AutoSyncMinutes   *int32
}

// IntegrationCreate inserts an integration.
func (q *Queries) IntegrationCreate(ctx context.Context, p *IntegrationCreateParams) (*Integration, error) {
	i, err := scanIntegration(q.exec.QueryRow(ctx, `
		INSERT INTO integrations (org_id, provider, name, base_url, credentials_sealed, credentials_key_id,
			credential_hint, auto_sync_minutes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+integrationColumns,
		p.OrgID, p.Provider, p.Name, p.BaseURL, p.CredentialsSealed, p.CredentialsKeyID, p.CredentialHint, p.AutoSyncMinutes))
	if err != nil {
		return nil, fmt.Errorf("error creating integration: %w", err)
	}
	return i, nil
}

// IntegrationGetByID returns an integration of orgID that is not deleted.
func (q *Queries) IntegrationGetByID(ctx context.Context, orgID, id int64) (*Integration, error) {
	i, err := scanIntegration(q.exec.QueryRow(ctx,
		"SELECT "+integrationColumns+" FROM integrations WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL", id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error loading integration %d: %w", id, err)
	}
	return i, nil
}

// IntegrationGetMany returns the integrations of orgID among ids, in no
// particular order; missing ones are left out. Dataloaders batch through it.
func (q *Queries) IntegrationGetMany(ctx context.Context, orgID int64, ids []int64) ([]*Integration, error) {
	rows, err := q.exec.Query(ctx,
		"SELECT "+integrationColumns+" FROM integrations WHERE org_id = $1 AND id = ANY($2)", orgID, ids)
	if err != nil {
		return nil, fmt.Errorf("error loading integrations: %w", err)
	}
	return collect(rows, scanIntegration)
}

// IntegrationList returns one page of orgID's integrations.
func (q *Queries) IntegrationList(ctx context.Context, orgID int64, p *PageParams) ([]*Integration, PageResult, error) {
	clause, args := p.keysetClause("id", []any{orgID})
	rows, err := q.exec.Query(ctx,
		"SELECT "+integrationColumns+" FROM integrations WHERE org_id = $1 AND deleted_at IS NULL"+clause, args...)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing integrations: %w", err)
	}
	list, err := collect(rows, scanIntegration)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing integrations: %w", err)
	}
	list, res := finish(p, list)
	return list, res, nil
}

// IntegrationCount counts orgID's integrations.
func (q *Queries) IntegrationCount(ctx context.Context, orgID int64) (int, error) {
	var n int
	err := q.exec.QueryRow(ctx, "SELECT count(*) FROM integrations WHERE org_id = $1 AND deleted_at IS NULL", orgID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("error counting integrations: %w", err)
	}
	return n, nil
}

// IntegrationUpdateParams are the fields to change; nil leaves a field as
// it is. ClearBaseURL and ClearAutoSync set those fields to NULL.
type IntegrationUpdateParams struct {
	OrgID             int64
	ID                int64
	Name              *string
	BaseURL           *string
	ClearBaseURL      bool
	CredentialsSealed []byte
	CredentialsKeyID  *string
	CredentialHint    *string
	AutoSyncMinutes   *int32
	ClearAutoSync     bool
}

// IntegrationUpdate changes an integration of orgID.
func (q *Queries) IntegrationUpdate(ctx context.Context, p *IntegrationUpdateParams) (*Integration, error) {
	i, err := scanIntegration(q.exec.QueryRow(ctx, `
		UPDATE integrations SET
			name = coalesce($3, name),
			base_url = CASE WHEN $5 THEN NULL ELSE coalesce($4, base_url) END,
			credentials_sealed = coalesce($6, credentials_sealed),
			credentials_key_id = coalesce($7, credentials_key_id),
			credential_hint = coalesce($8, credential_hint),
			auto_sync_minutes = CASE WHEN $10 THEN NULL ELSE coalesce($9, auto_sync_minutes) END,
			status = CASE WHEN $6::bytea IS NOT NULL THEN 'ACTIVE' ELSE status END,
			updated_at = now()
		WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL
		RETURNING `+integrationColumns,
		p.ID, p.OrgID, p.Name, p.BaseURL, p.ClearBaseURL, p.CredentialsSealed, p.CredentialsKeyID, p.CredentialHint,
		p.AutoSyncMinutes, p.ClearAutoSync))
	if err != nil {
		return nil, fmt.Errorf("error updating integration %d: %w", p.ID, err)
	}
	return i, nil
}

// IntegrationDelete soft-deletes an integration of orgID and its clients, so
// they leave every list at once; the rows stay for an undo.
func (q *Queries) IntegrationDelete(ctx context.Context, orgID, id int64) error {
	tag, err := q.exec.Exec(ctx,
		"UPDATE integrations SET deleted_at = now(), updated_at = now() WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL",
		id, orgID)
	if err != nil {
		return fmt.Errorf("error deleting integration %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("error deleting integration %d: %w", id, ErrNotFound)
	}
	if _, err := q.exec.Exec(ctx,
		"UPDATE clients SET deleted_at = now(), updated_at = now() WHERE integration_id = $1 AND deleted_at IS NULL", id); err != nil {
		return fmt.Errorf("error deleting clients of integration %d: %w", id, err)
	}
	return q.dataChanged(ctx, orgID)
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// IntegrationGetByIDAnyOrg returns an integration that is not deleted,
// whatever its organization; the caller checks access on the row's OrgID.
func (q *Queries) IntegrationGetByIDAnyOrg(ctx context.Context, id int64) (*Integration, error) {
	i, err := scanIntegration(q.exec.QueryRow(ctx,
		"SELECT "+integrationColumns+" FROM integrations WHERE id = $1 AND deleted_at IS NULL", id))
	if err != nil {
		return nil, fmt.Errorf("error loading integration %d: %w", id, err)
	}
	return i, nil
}

// IntegrationGetByIDAnyOrgIncludingDeleted returns an integration of orgID,
// deleted or not: a client keeps pointing at its integration after the
// integration was removed.
func (q *Queries) IntegrationGetByIDAnyOrgIncludingDeleted(ctx context.Context, orgID, id int64) (*Integration, error) {
	i, err := scanIntegration(q.exec.QueryRow(ctx,
		"SELECT "+integrationColumns+" FROM integrations WHERE id = $1 AND org_id = $2", id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error loading integration %d: %w", id, err)
	}
	return i, nil
}

// IntegrationListDueForSync returns up to limit API integrations with
// auto-sync on whose last sync is older than their interval and that have no
// active run.
func (q *Queries) IntegrationListDueForSync(ctx context.Context, limit int) ([]*Integration, error) {
	rows, err := q.exec.Query(ctx, `
		SELECT `+integrationColumns+` FROM integrations i
		WHERE auto_sync_minutes IS NOT NULL AND deleted_at IS NULL AND status = 'ACTIVE'
			AND provider IN ('TAVE', 'HONEYBOOK')
			AND (last_synced_at IS NULL OR last_synced_at < now() - make_interval(mins => auto_sync_minutes))
			AND NOT EXISTS (SELECT 1 FROM import_runs r WHERE r.integration_id = i.id AND r.state IN ('QUEUED', 'RUNNING', 'RETRYING'))
		ORDER BY last_synced_at NULLS FIRST
		LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("error listing integrations due for sync: %w", err)
	}
	return collect(rows, scanIntegration)
}

// IntegrationGetManyAnyOrg returns the integrations among ids, deleted or
// not, whatever their organization; dataloaders batch through it and check
// the organization.
func (q *Queries) IntegrationGetManyAnyOrg(ctx context.Context, ids []int64) ([]*Integration, error) {
	rows, err := q.exec.Query(ctx, "SELECT "+integrationColumns+" FROM integrations WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("error loading integrations: %w", err)
	}
	return collect(rows, scanIntegration)
}
