-- What SUPPORT tokens (crmhub staff) do to an organization: reads of its
-- client data, cancelled and retried imports. One row per request, per
-- organization and action, readable by the organization's OWNER.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id         bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    -- The token stays named even after it is deleted.
    actor_token_id bigint REFERENCES api_tokens (id) ON DELETE SET NULL,
    actor_name     text NOT NULL,
    actor_role     text NOT NULL,
    -- READ_CLIENTS, READ_IMPORT_REJECTS, CANCEL_IMPORT, RETRY_IMPORT, …
    action         text NOT NULL,
    -- The global id of what was acted on, when it is one object.
    target_id      text,
    request_id     text
);

CREATE INDEX audit_log_org_idx ON audit_log (org_id, id DESC);
