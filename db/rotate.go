package db

import (
	"context"
	"fmt"
)

// SealedCredentials are an integration's sealed CRM credentials, as key
// rotation reads them.
type SealedCredentials struct {
	IntegrationID int64
	OrgID         int64
	Sealed        []byte
	KeyID         string
}

// IntegrationCredentialsNotUnderKey returns up to limit integrations (deleted
// ones too) after afterID, in id order, whose credentials are sealed under a
// key other than keyID.
func (q *Queries) IntegrationCredentialsNotUnderKey(ctx context.Context, keyID string, afterID int64, limit int) ([]*SealedCredentials, error) {
	rows, err := q.exec.Query(ctx, `
		SELECT id, org_id, credentials_sealed, coalesce(credentials_key_id, '')
		FROM integrations
		WHERE credentials_sealed IS NOT NULL AND credentials_key_id IS DISTINCT FROM $1 AND id > $2
		ORDER BY id LIMIT $3`, keyID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("error listing credentials to re-seal: %w", err)
	}
	defer rows.Close()
	var out []*SealedCredentials
	for rows.Next() {
		var s SealedCredentials
		if err := rows.Scan(&s.IntegrationID, &s.OrgID, &s.Sealed, &s.KeyID); err != nil {
			return nil, fmt.Errorf("error reading credentials to re-seal: %w", err)
		}
		out = append(out, &s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error listing credentials to re-seal: %w", err)
	}
	return out, nil
}

// IntegrationCredentialsReseal replaces old's sealed credentials with sealed
// (under keyID), only if they are still exactly old's: a concurrent update
// (which seals under the new key anyway) wins. It reports whether the row
// changed.
func (q *Queries) IntegrationCredentialsReseal(ctx context.Context, old *SealedCredentials, sealed []byte, keyID string) (bool, error) {
	tag, err := q.exec.Exec(ctx, `
		UPDATE integrations SET credentials_sealed = $3, credentials_key_id = $4
		WHERE id = $1 AND credentials_sealed = $2`, old.IntegrationID, old.Sealed, sealed, keyID)
	if err != nil {
		return false, fmt.Errorf("error re-sealing credentials of integration %d: %w", old.IntegrationID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// IntegrationCredentialsCountUnderKey counts integrations whose credentials
// are sealed under keyID.
func (q *Queries) IntegrationCredentialsCountUnderKey(ctx context.Context, keyID string) (int, error) {
	var n int
	err := q.exec.QueryRow(ctx, `SELECT count(*) FROM integrations WHERE credentials_sealed IS NOT NULL AND credentials_key_id = $1`, keyID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("error counting credentials under key %s: %w", keyID, err)
	}
	return n, nil
}
