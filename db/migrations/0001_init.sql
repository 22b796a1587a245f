-- crmhub's data model. See DESIGN.md "Data (PostgreSQL)".

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- data_version grows with every committed change to the org's data; cache
    -- entries are keyed by it, so a read after a commit never sees old data.
    data_version bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL only for SUPPORT tokens, which belong to crmhub staff.
    org_id       bigint REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    role         text NOT NULL CHECK (role IN ('OWNER', 'MEMBER', 'SUPPORT')),
    -- SHA-256 of the whole token; the token itself is never stored.
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The first characters of the token, to tell tokens apart in a list.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK ((role = 'SUPPORT') = (org_id IS NULL))
);
CREATE INDEX api_tokens_org_idx ON api_tokens (org_id, id);

CREATE TABLE integrations (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                 bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider               text NOT NULL CHECK (provider IN ('TAVE', 'HONEYBOOK', 'LIGHTBLUE', 'CSV')),
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    base_url               text,
    -- AES-256-GCM sealed JSON of the credentials; the key id says which
    -- server key sealed it, so keys can be rotated.
    credentials_sealed     bytea,
    credentials_key_id     text,
    credential_hint        text,
    auto_sync_minutes      integer CHECK (auto_sync_minutes IS NULL OR auto_sync_minutes BETWEEN 5 AND 10080),
    status                 text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'AUTH_FAILED', 'DISABLED')),
    -- The watermark of the last successful import, for INCREMENTAL runs.
    incremental_checkpoint text,
    last_synced_at         timestamptz,
    last_run_id            bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz
);
CREATE INDEX integrations_org_idx ON integrations (org_id, id) WHERE deleted_at IS NULL;
CREATE INDEX integrations_autosync_idx ON integrations (last_synced_at)
    WHERE auto_sync_minutes IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE import_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id   bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    mode             text NOT NULL CHECK (mode IN ('FULL', 'INCREMENTAL', 'FILE')),
    state            text NOT NULL DEFAULT 'QUEUED'
                     CHECK (state IN ('QUEUED', 'RUNNING', 'RETRYING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    processed        bigint NOT NULL DEFAULT 0,
    created          bigint NOT NULL DEFAULT 0,
    updated          bigint NOT NULL DEFAULT 0,
    unchanged        bigint NOT NULL DEFAULT 0,
    rejected         bigint NOT NULL DEFAULT 0,
    deleted          bigint NOT NULL DEFAULT 0,
    total_estimate   bigint,
    -- seq grows by one with every committed change of the run; progress
    -- subscribers use it to drop stale events.
    seq              bigint NOT NULL DEFAULT 0,
    checkpoint       text,
    watermark        text,
    error_code       text,
    error_message    text,
    attempt          integer NOT NULL DEFAULT 0,
    river_job_id     bigint,
    idempotency_key  text,
    file_id          bigint,
    -- For FILE runs: the file's format and the column mapping in force.
    file_format      text,
    column_mapping   jsonb,
    requested_by     bigint REFERENCES api_tokens (id) ON DELETE SET NULL,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one active run per integration.
CREATE UNIQUE INDEX import_runs_one_active_idx ON import_runs (integration_id)
    WHERE state IN ('QUEUED', 'RUNNING', 'RETRYING');
CREATE UNIQUE INDEX import_runs_idempotency_idx ON import_runs (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX import_runs_org_idx ON import_runs (org_id, id DESC);
CREATE INDEX import_runs_integration_idx ON import_runs (integration_id, id DESC);

ALTER TABLE integrations
    ADD CONSTRAINT integrations_last_run_fk FOREIGN KEY (last_run_id) REFERENCES import_runs (id) ON DELETE SET NULL;

CREATE TABLE import_files (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    filename     text NOT NULL,
    content_type text NOT NULL DEFAULT '',
    size_bytes   bigint NOT NULL,
    sha256       bytea NOT NULL,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Uncompressed out-of-line storage lets a worker read a file in chunks
-- (substring) without loading all of it.
ALTER TABLE import_files ALTER COLUMN content SET STORAGE EXTERNAL;

ALTER TABLE import_runs
    ADD CONSTRAINT import_runs_file_fk FOREIGN KEY (file_id) REFERENCES import_files (id) ON DELETE SET NULL;

CREATE TABLE import_rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES import_runs (id) ON DELETE CASCADE,
    org_id      bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    row_number  integer NOT NULL,
    external_id text,
    reason      text NOT NULL,
    raw         jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A replayed page writes its rejects again; the key makes that harmless.
    UNIQUE (run_id, row_number)
);

CREATE TABLE clients (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id              bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id      bigint NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_id         text NOT NULL,
    first_name          text NOT NULL DEFAULT '',
    last_name           text NOT NULL DEFAULT '',
    maiden_name         text NOT NULL DEFAULT '',
    partner_first_name  text NOT NULL DEFAULT '',
    partner_last_name   text NOT NULL DEFAULT '',
    email               text NOT NULL DEFAULT '',
    email_normalized    text NOT NULL DEFAULT '',
    phone               text NOT NULL DEFAULT '',
    event_date          date,
    venue               text NOT NULL DEFAULT '',
    job_type            text NOT NULL DEFAULT '',
    stage               text CHECK (stage IN ('LEAD', 'BOOKED', 'FULFILLED', 'COMPLETED', 'LOST')),
    lead_source         text NOT NULL DEFAULT '',
    booking_value_minor bigint,
    currency            text NOT NULL DEFAULT '',
    guest_count         integer,
    source_created_at   timestamptz,
    source_updated_at   timestamptz,
    raw                 jsonb,
    last_seen_run_id    bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    UNIQUE (integration_id, external_id)
) WITH (
    -- Re-imports rewrite every row they see (to record last_seen_run_id);
    -- free space on each page lets those updates be HOT, leaving the indexes
    -- alone.
    fillfactor = 80
);
-- The list paths: every order the API offers, keyset over (key, id), each
-- index read forwards or backwards (first/after and last/before). The
-- expressions must match db/clients.go's clientOrders exactly.
CREATE INDEX clients_org_id_idx ON clients (org_id, id);
-- EVENT_DATE puts clients without a date last in both directions: NULL
-- becomes +infinity ascending and -infinity descending, so the keyset is a
-- plain row comparison the index serves, with no OR over NULLs.
CREATE INDEX clients_org_event_date_asc_idx ON clients (org_id, (coalesce(event_date, 'infinity'::date)), id);
CREATE INDEX clients_org_event_date_desc_idx ON clients (org_id, (coalesce(event_date, '-infinity'::date)), id);
CREATE INDEX clients_org_last_name_idx ON clients (org_id, (lower(last_name)), id);
CREATE INDEX clients_org_updated_idx ON clients (org_id, updated_at, id);
CREATE INDEX clients_org_created_idx ON clients (org_id, created_at, id);
CREATE INDEX clients_org_email_idx ON clients (org_id, email_normalized) WHERE email_normalized <> '';
-- Soft delete of clients a FULL import did not see. last_seen_run_id is
-- deliberately not indexed, so that recording it stays a HOT update.
CREATE INDEX clients_integration_live_idx ON clients (integration_id) WHERE deleted_at IS NULL;
-- Text search over names, partner names, email and venue.
CREATE INDEX clients_search_trgm_idx ON clients USING gin (
    (lower(first_name || ' ' || last_name || ' ' || maiden_name || ' ' || partner_first_name || ' ' ||
           partner_last_name || ' ' || email || ' ' || venue)) gin_trgm_ops
);
