package db

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// APIToken is a stored API token: its hash, never the token.
type APIToken struct {
	ID         int64
	OrgID      *int64
	Name       string
	Role       string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

const tokenColumns = "id, org_id, name, role, prefix, created_at, last_used_at, revoked_at"

func scanToken(row pgx.Row) (*APIToken, error) {
	var t APIToken
	if err := row.Scan(&t.ID, &t.OrgID, &t.Name, &t.Role, &t.Prefix, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt); err != nil {
		return nil, interpretError(err)
	}
	return &t, nil
}

// APITokenCreateParams are the fields of a new token. OrgID is nil only for
// a SUPPORT token.
type APITokenCreateParams struct {
	OrgID  *int64
	Name   string
	Role   string
	Hash   []byte
	Prefix string
}

// APITokenCreate stores a token's hash.
func (q *Queries) APITokenCreate(ctx context.Context, p *APITokenCreateParams) (*APIToken, error) {
	t, err := scanToken(q.exec.QueryRow(ctx, `
		INSERT INTO api_tokens (org_id, name, role, token_hash, prefix)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING `+tokenColumns, p.OrgID, p.Name, p.Role, p.Hash, p.Prefix))
	if err != nil {
		return nil, fmt.Errorf("error creating token: %w", err)
	}
	return t, nil
}

// APITokenGetActiveByHash returns the unrevoked token with this hash, or
// ErrNotFound.
func (q *Queries) APITokenGetActiveByHash(ctx context.Context, hash []byte) (*APIToken, error) {
	t, err := scanToken(q.exec.QueryRow(ctx,
		"SELECT "+tokenColumns+" FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL", hash))
	if err != nil {
		return nil, fmt.Errorf("error loading token: %w", err)
	}
	return t, nil
}

// APITokenGetByID returns a token of orgID.
func (q *Queries) APITokenGetByID(ctx context.Context, orgID, id int64) (*APIToken, error) {
	t, err := scanToken(q.exec.QueryRow(ctx,
		"SELECT "+tokenColumns+" FROM api_tokens WHERE id = $1 AND org_id = $2", id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error loading token %d: %w", id, err)
	}
	return t, nil
}

// APITokenRevoke revokes a token of orgID; revoking twice keeps the first
// time.
func (q *Queries) APITokenRevoke(ctx context.Context, orgID, id int64) (*APIToken, error) {
	t, err := scanToken(q.exec.QueryRow(ctx, `
		UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 AND org_id = $2
		RETURNING `+tokenColumns, id, orgID))
	if err != nil {
		return nil, fmt.Errorf("error revoking token %d: %w", id, err)
	}
	// Every node drops its cached principals at once; they expire within
	// a second anyway, should a node miss this.
	if _, err := q.exec.Exec(ctx, "SELECT pg_notify($1, $2)", TokenRevokedChannel, strconv.FormatInt(id, 10)); err != nil {
		return nil, fmt.Errorf("error notifying revocation of token %d: %w", id, err)
	}
	return t, nil
}

// APITokenTouch records that a token was used, at most once a minute so a
// busy token does not write on every request.
func (q *Queries) APITokenTouch(ctx context.Context, id int64) error {
	_, err := q.exec.Exec(ctx, `
		UPDATE api_tokens SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, id)
	if err != nil {
		return fmt.Errorf("error touching token %d: %w", id, err)
	}
	return nil
}

// APITokenList returns one page of orgID's tokens.
func (q *Queries) APITokenList(ctx context.Context, orgID int64, p *PageParams) ([]*APIToken, PageResult, error) {
	clause, args := p.keysetClause("id", []any{orgID})
	rows, err := q.exec.Query(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE org_id = $1"+clause, args...)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing tokens: %w", err)
	}
	list, err := collect(rows, scanToken)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing tokens: %w", err)
	}
	list, res := finish(p, list)
	return list, res, nil
}

// APITokenCount counts orgID's tokens.
func (q *Queries) APITokenCount(ctx context.Context, orgID int64) (int, error) {
	var n int
	if err := q.exec.QueryRow(ctx, "SELECT count(*) FROM api_tokens WHERE org_id = $1", orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting tokens: %w", err)
	}
	return n, nil
}
