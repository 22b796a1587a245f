-- What a search index costs an import: inserts 100,000 synthetic clients
-- three times, with no GIN index, with a full-text GIN index and with the
-- pg_trgm GIN index crmhub uses. Run: psql -h 127.0.0.1 -U postgres -f bench/gin_cost.sql
-- It works in a scratch database it creates and drops.
\timing on
DROP DATABASE IF EXISTS crmhub_gin_cost;
CREATE DATABASE crmhub_gin_cost;
\c crmhub_gin_cost
CREATE EXTENSION pg_trgm;
CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, org bigint, first_name text, last_name text,
    partner_first_name text, partner_last_name text, email text, venue text);
CREATE TABLE src AS SELECT 1::bigint AS org, 'Emma' || i AS first_name, 'Clarke' || (i % 997) AS last_name,
    'James' || (i % 113) AS partner_first_name, 'Okafor' || (i % 71) AS partner_last_name,
    'emma.clarke' || i || '@example.com' AS email, 'The Grand Hall at Riverside ' || (i % 50) AS venue
    FROM generate_series(1, 100000) i;
\echo 'no GIN index:'
INSERT INTO t (org, first_name, last_name, partner_first_name, partner_last_name, email, venue) SELECT * FROM src;
TRUNCATE t;
CREATE INDEX t_fts ON t USING gin (to_tsvector('simple', first_name || ' ' || last_name || ' ' ||
    partner_first_name || ' ' || partner_last_name || ' ' || email || ' ' || venue));
\echo 'full-text GIN index:'
INSERT INTO t (org, first_name, last_name, partner_first_name, partner_last_name, email, venue) SELECT * FROM src;
DROP INDEX t_fts;
TRUNCATE t;
CREATE INDEX t_trgm ON t USING gin ((lower(first_name || ' ' || last_name || ' ' || partner_first_name || ' ' ||
    partner_last_name || ' ' || email || ' ' || venue)) gin_trgm_ops);
\echo 'pg_trgm GIN index:'
INSERT INTO t (org, first_name, last_name, partner_first_name, partner_last_name, email, venue) SELECT * FROM src;
\c postgres
DROP DATABASE crmhub_gin_cost;
