-- The SQL of an uncached clients(first: 50) first page (db.Queries.ClientList
-- with no filter and the default order), for pgbench: a C client's floor
-- beside bench/readpath's Go one. README, "Measured performance", has the
-- command; :org is the bench organization's id.
SELECT id, org_id, integration_id, external_id, first_name, last_name, maiden_name, partner_first_name,
       partner_last_name, email, email_normalized, phone, event_date, venue, job_type, stage, lead_source,
       booking_value_minor, currency, guest_count, source_created_at, source_updated_at, NULL::jsonb,
       last_seen_run_id, created_at, updated_at, deleted_at
FROM clients WHERE org_id = :org AND deleted_at IS NULL ORDER BY id ASC LIMIT 51;
