package db

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one audit_log row: something a SUPPORT token did to an
// organization.
type AuditEntry struct {
	ID           int64
	OrgID        int64
	At           time.Time
	ActorTokenID *int64
	ActorName    string
	ActorRole    string
	Action       string
	TargetID     *string
	RequestID    *string
}

const auditColumns = `id, org_id, at, actor_token_id, actor_name, actor_role, action, target_id, request_id`

func scanAuditEntry(row pgx.Row) (*AuditEntry, error) {
	var e AuditEntry
	err := row.Scan(&e.ID, &e.OrgID, &e.At, &e.ActorTokenID, &e.ActorName, &e.ActorRole, &e.Action, &e.TargetID, &e.RequestID)
	if err != nil {
		return nil, interpretError(err)
	}
	return &e, nil
}

// AuditCreateParams are the fields of a new audit_log row.
type AuditCreateParams struct {
	OrgID        int64
	ActorTokenID int64
	ActorName    string
	ActorRole    string
	Action       string
	TargetID     *string
	RequestID    *string
}

// AuditCreate writes one audit_log row.
func (q *Queries) AuditCreate(ctx context.Context, p *AuditCreateParams) error {
	_, err := q.exec.Exec(ctx, `
		INSERT INTO audit_log (org_id, actor_token_id, actor_name, actor_role, action, target_id, request_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.OrgID, p.ActorTokenID, p.ActorName, p.ActorRole, p.Action, p.TargetID, p.RequestID)
	if err != nil {
		return fmt.Errorf("error writing audit entry for org %d: %w", p.OrgID, err)
	}
	return nil
}

// AuditList returns one page of orgID's audit log, newest first: AfterID
// continues below an entry; BeforeID and Backward are not supported.
func (q *Queries) AuditList(ctx context.Context, orgID int64, p *PageParams) ([]*AuditEntry, PageResult, error) {
	args := []any{orgID}
	where := ""
	if p.AfterID != nil {
		args = append(args, *p.AfterID)
		where = " AND id < $2"
	}
	args = append(args, p.Limit+1)
	rows, err := q.exec.Query(ctx, "SELECT "+auditColumns+" FROM audit_log WHERE org_id = $1"+where+
		" ORDER BY id DESC LIMIT $"+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing audit log of org %d: %w", orgID, err)
	}
	list, err := collect(rows, scanAuditEntry)
	if err != nil {
		return nil, PageResult{}, fmt.Errorf("error listing audit log of org %d: %w", orgID, err)
	}
	res := PageResult{HasPrevious: p.AfterID != nil}
	if len(list) > p.Limit {
		list, res.HasNext = list[:p.Limit], true
	}
	return list, res, nil
}

// AuditCount counts orgID's audit log entries.
func (q *Queries) AuditCount(ctx context.Context, orgID int64) (int, error) {
	var n int
	if err := q.exec.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE org_id = $1", orgID).Scan(&n); err != nil {
		return 0, fmt.Errorf("error counting audit log of org %d: %w", orgID, err)
	}
	return n, nil
}
