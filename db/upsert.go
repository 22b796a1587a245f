package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wedsync/crmhub/crm"
)

// ErrRunNotRunning is returned by ImportPageApply when the run left RUNNING
// (it was cancelled) while the page was being read: the page's transaction
// must roll back and the worker stop.
var ErrRunNotRunning = fmt.Errorf("import run is no longer running")

// DataVersionChannel is the NOTIFY channel of organization data versions:
// payload "orgID:version". Caches keyed by the version learn of new data
// through it.
const DataVersionChannel = "crmhub_data_version"

// stageColumns are the columns COPY fills in the page's staging table.
var stageColumns = []string{
	"row_idx", "external_id", "first_name", "last_name", "maiden_name", "partner_first_name", "partner_last_name",
	"email", "email_normalized", "phone", "event_date", "venue", "job_type", "stage", "lead_source",
	"booking_value_minor", "currency", "guest_count", "source_created_at", "source_updated_at", "raw",
}

// dataColumns are the client columns an import writes; a row whose data
// columns all equal the CRM's is unchanged.
var dataColumns = []string{
	"first_name", "last_name", "maiden_name", "partner_first_name", "partner_last_name", "email",
	"email_normalized", "phone", "event_date", "venue", "job_type", "stage", "lead_source", "booking_value_minor",
	"currency", "guest_count", "source_created_at", "source_updated_at", "raw",
}

// columnList joins dataColumns, each with prefix ("c.", "EXCLUDED.").
func columnList(prefix string) string {
	out := make([]string, len(dataColumns))
	for i, c := range dataColumns {
		out[i] = prefix + c
	}
	return strings.Join(out, ", ")
}

// setList is "col = EXCLUDED.col" for every data column.
func setList() string {
	out := make([]string, len(dataColumns))
	for i, c := range dataColumns {
		out[i] = c + " = EXCLUDED." + c
	}
	return strings.Join(out, ", ")
}

// The staging table lives for the session (one per pooled connection) and
// empties at every commit, so pages do not churn the catalog.
const createStage = `CREATE TEMP TABLE IF NOT EXISTS import_stage (
	row_idx integer NOT NULL, external_id text NOT NULL, first_name text NOT NULL, last_name text NOT NULL,
	maiden_name text NOT NULL, partner_first_name text NOT NULL, partner_last_name text NOT NULL,
	email text NOT NULL, email_normalized text NOT NULL, phone text NOT NULL, event_date date,
	venue text NOT NULL, job_type text NOT NULL, stage text, lead_source text NOT NULL,
	booking_value_minor bigint, currency text NOT NULL, guest_count integer,
	source_created_at timestamptz, source_updated_at timestamptz, raw jsonb
) ON COMMIT DELETE ROWS`

// upsertStaged writes the staged page into clients in one statement. Rows
// are inserted, updated when any data column differs (or the client had been
// deleted), and otherwise only marked as seen by this run — an update that
// touches no indexed column, so PostgreSQL can keep it HOT. Replaying a page
// changes nothing. Within a page the last record of an external id wins.
var upsertStaged = `
WITH src AS (
	SELECT DISTINCT ON (external_id) * FROM import_stage ORDER BY external_id, row_idx DESC
), up AS (
	INSERT INTO clients AS c (org_id, integration_id, external_id, ` + columnList("") + `, last_seen_run_id)
	SELECT $1, $2, external_id, ` + columnList("") + `, $3 FROM src
	ON CONFLICT (integration_id, external_id) DO UPDATE SET
		` + setList() + `,
		last_seen_run_id = EXCLUDED.last_seen_run_id,
		deleted_at = NULL,
		updated_at = CASE
			WHEN c.deleted_at IS NOT NULL OR (` + columnList("c.") + `) IS DISTINCT FROM (` + columnList("EXCLUDED.") + `)
			THEN now() ELSE c.updated_at END
	WHERE c.last_seen_run_id IS DISTINCT FROM EXCLUDED.last_seen_run_id
		OR c.deleted_at IS NOT NULL
		OR (` + columnList("c.") + `) IS DISTINCT FROM (` + columnList("EXCLUDED.") + `)
	RETURNING (xmax = 0) AS inserted, (updated_at = now()) AS changed
)
SELECT
	(SELECT count(*) FROM src),
	count(*) FILTER (WHERE inserted),
	count(*) FILTER (WHERE NOT inserted AND changed)
FROM up`

// ImportPageParams is one page of an import to commit.
type ImportPageParams struct {
	OrgID         int64
	IntegrationID int64
	RunID         int64
	Page          *crm.Page
}

// ImportPageApply commits one page, in the caller's transaction: the
// clients (COPY into a staging table, one upsert), the rejects, the run's
// counters, checkpoint and seq, the organization's data version, and the
// progress and data-version notifications, which PostgreSQL delivers only
// if the transaction commits. It returns the run as committed.
func (q *Queries) ImportPageApply(ctx context.Context, p *ImportPageParams) (*ImportRun, error) {
	var total, created, updated int64
	if len(p.Page.Clients) > 0 {
		if _, err := q.exec.Exec(ctx, createStage); err != nil {
			return nil, fmt.Errorf("error creating staging table: %w", err)
		}
		if _, err := q.exec.CopyFrom(ctx, pgx.Identifier{"import_stage"}, stageColumns, &clientSource{rows: p.Page.Clients}); err != nil {
			return nil, fmt.Errorf("error copying page of run %d: %w", p.RunID, err)
		}
		if err := q.exec.QueryRow(ctx, upsertStaged, p.OrgID, p.IntegrationID, p.RunID).Scan(&total, &created, &updated); err != nil {
			return nil, fmt.Errorf("error upserting page of run %d: %w", p.RunID, err)
		}
	}
	var rejected int64
	if len(p.Page.Rejects) > 0 {
		n, err := q.importRejectsInsert(ctx, p.OrgID, p.RunID, p.Page.Rejects)
		if err != nil {
			return nil, err
		}
		rejected = n
	}
	var totalEstimate *int64
	if p.Page.TotalEstimate >= 0 {
		te := int64(p.Page.TotalEstimate)
		totalEstimate = &te
	}
	run, err := scanRun(q.exec.QueryRow(ctx, `
		UPDATE import_runs SET
			processed = processed + $2 + $6,
			created = created + $3,
			updated = updated + $4,
			unchanged = unchanged + ($2 - $3 - $4),
			rejected = rejected + $6,
			checkpoint = $7,
			watermark = coalesce(nullif($8, ''), watermark),
			total_estimate = coalesce($5, total_estimate),
			seq = seq + 1,
			updated_at = now()
		WHERE id = $1 AND state = 'RUNNING'
		RETURNING `+runColumns,
		p.RunID, total, created, updated, totalEstimate, rejected, p.Page.Cursor, p.Page.Watermark))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrRunNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("error updating run %d: %w", p.RunID, err)
	}
	if created+updated > 0 {
		if err := q.dataChanged(ctx, p.OrgID); err != nil {
			return nil, err
		}
	}
	if err := q.notifyRun(ctx, run); err != nil {
		return nil, err
	}
	return run, nil
}

// dataChanged bumps the organization's data version and tells every node.
func (q *Queries) dataChanged(ctx context.Context, orgID int64) error {
	v, err := q.OrganizationBumpDataVersion(ctx, orgID)
	if err != nil {
		return err
	}
	payload := strconv.FormatInt(orgID, 10) + ":" + strconv.FormatInt(v, 10)
	if _, err := q.exec.Exec(ctx, "SELECT pg_notify($1, $2)", DataVersionChannel, payload); err != nil {
		return fmt.Errorf("error notifying data version: %w", err)
	}
	return nil
}

// importRejectsInsert writes rejects; a replayed page's rejects are already
// there and are not counted again.
func (q *Queries) importRejectsInsert(ctx context.Context, orgID, runID int64, rejects []crm.Reject) (int64, error) {
	rows := make([]int32, len(rejects))
	ids := make([]*string, len(rejects))
	reasons := make([]string, len(rejects))
	raws := make([]*string, len(rejects))
	for i, r := range rejects {
		rows[i] = int32(r.Row)
		if r.ExternalID != "" {
			ids[i] = &r.ExternalID
		}
		reasons[i] = r.Reason
		if len(r.Raw) > 0 {
			raw := string(r.Raw)
			if !json.Valid(r.Raw) {
				b, _ := json.Marshal(raw)
				raw = string(b)
			}
			raws[i] = &raw
		}
	}
	tag, err := q.exec.Exec(ctx, `
		INSERT INTO import_rejects (run_id, org_id, row_number, external_id, reason, raw)
		SELECT $1, $2, r.row_number, r.external_id, r.reason, r.raw::jsonb
		FROM unnest($3::int[], $4::text[], $5::text[], $6::text[]) AS r(row_number, external_id, reason, raw)
		ON CONFLICT (run_id, row_number) DO NOTHING`, runID, orgID, rows, ids, reasons, raws)
	if err != nil {
		return 0, fmt.Errorf("error saving rejects of run %d: %w", runID, err)
	}
	return tag.RowsAffected(), nil
}

// ImportRunFinish ends a successful run, in the caller's transaction: a FULL
// run soft-deletes the integration's clients it did not see (a client whose
// record was rejected in this run is kept), the integration records the
// sync and its new watermark, and listeners hear of the final state.
func (q *Queries) ImportRunFinish(ctx context.Context, run *ImportRun) (*ImportRun, error) {
	var deleted int64
	if run.Mode == "FULL" {
		tag, err := q.exec.Exec(ctx, `
			UPDATE clients SET deleted_at = now(), updated_at = now()
			WHERE integration_id = $1 AND deleted_at IS NULL AND last_seen_run_id IS DISTINCT FROM $2
				AND external_id NOT IN (
					SELECT external_id FROM import_rejects WHERE run_id = $2 AND external_id IS NOT NULL)`,
			run.IntegrationID, run.ID)
		if err != nil {
			return nil, fmt.Errorf("error soft-deleting unseen clients of run %d: %w", run.ID, err)
		}
		deleted = tag.RowsAffected()
	}
	done, err := scanRun(q.exec.QueryRow(ctx, `
		UPDATE import_runs SET state = 'SUCCEEDED', deleted = $2, seq = seq + 1, finished_at = now(),
			updated_at = now(), error_code = NULL, error_message = NULL
		WHERE id = $1 AND state = 'RUNNING'
		RETURNING `+runColumns, run.ID, deleted))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrRunNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("error finishing run %d: %w", run.ID, err)
	}
	if _, err := q.exec.Exec(ctx, `
		UPDATE integrations SET last_synced_at = now(), status = 'ACTIVE', updated_at = now(),
			incremental_checkpoint = coalesce($2, incremental_checkpoint)
		WHERE id = $1`, run.IntegrationID, done.Watermark); err != nil {
		return nil, fmt.Errorf("error recording sync of integration %d: %w", run.IntegrationID, err)
	}
	if deleted > 0 {
		if err := q.dataChanged(ctx, run.OrgID); err != nil {
			return nil, err
		}
	}
	if err := q.notifyRun(ctx, done); err != nil {
		return nil, err
	}
	return done, nil
}

// IntegrationSetStatus records an integration's health (AUTH_FAILED when the
// CRM refused its credentials).
func (q *Queries) IntegrationSetStatus(ctx context.Context, id int64, status string) error {
	if _, err := q.exec.Exec(ctx, "UPDATE integrations SET status = $2, updated_at = now() WHERE id = $1", id, status); err != nil {
		return fmt.Errorf("error setting status of integration %d: %w", id, err)
	}
	return nil
}

// IntegrationSetLastRun points an integration at its newest run.
func (q *Queries) IntegrationSetLastRun(ctx context.Context, id, runID int64) error {
	if _, err := q.exec.Exec(ctx, "UPDATE integrations SET last_run_id = $2 WHERE id = $1", id, runID); err != nil {
		return fmt.Errorf("error setting last run of integration %d: %w", id, err)
	}
	return nil
}

// clientSource feeds a page's clients to COPY without copying them.
type clientSource struct {
	rows []crm.Client
	i    int
}

func (s *clientSource) Next() bool { s.i++; return s.i <= len(s.rows) }

func (s *clientSource) Err() error { return nil }

func (s *clientSource) Values() ([]any, error) {
	c := &s.rows[s.i-1]
	var stage *string
	if c.Stage != "" {
		st := string(c.Stage)
		stage = &st
	}
	var raw any
	if len(c.Raw) > 0 {
		raw = []byte(c.Raw)
		if !json.Valid(c.Raw) {
			b, _ := json.Marshal(string(c.Raw))
			raw = b
		}
	}
	return []any{
		int32(s.i), c.ExternalID, c.FirstName, c.LastName, c.MaidenName, c.PartnerFirstName, c.PartnerLastName,
		c.Email, c.EmailNormalized, c.Phone, dateOrNil(c.EventDate), c.Venue, c.JobType, stage, c.LeadSource,
		c.BookingValueMinor, c.Currency, c.GuestCount, c.SourceCreatedAt, c.SourceUpdatedAt, raw,
	}, nil
}

func dateOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}
