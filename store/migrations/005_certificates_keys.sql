-- 005_certificates_keys: certificates and their SNIs, CA certificates, key
-- sets and keys (Kong's core migrations 000_base, 005_120_to_130 and
-- 017_300_to_310), and services.client_certificate as a real foreign key.

CREATE TABLE certificates (
    id         uuid   PRIMARY KEY,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX certificates_tags_idx ON certificates USING gin (tags);

-- A service's client certificate was kept only in its document while no
-- certificates existed, so any reference there points at nothing. Kong
-- could never have stored one; rather than drop it silently, stop here and
-- name the services to fix.
DO $$
DECLARE
    dangling text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO dangling FROM services
     WHERE jsonb_typeof(doc->'client_certificate') = 'object';
    IF dangling IS NOT NULL THEN
        RAISE EXCEPTION 'services % refer to a client_certificate that does not exist; set it to null and run the migration again', dangling;
    END IF;
END $$;

ALTER TABLE services
    ADD COLUMN client_certificate_id uuid REFERENCES certificates (id) ON DELETE RESTRICT;
CREATE INDEX services_client_certificate_id_idx ON services (client_certificate_id);

-- Kong's certificates DAO deletes a certificate's SNIs itself; the store
-- does the same before the certificate, so the key restricts.
CREATE TABLE snis (
    id             uuid   PRIMARY KEY,
    name           text   NOT NULL UNIQUE,
    certificate_id uuid   NOT NULL REFERENCES certificates (id) ON DELETE RESTRICT,
    tags           text[],
    created_at     bigint,
    updated_at     bigint,
    doc            jsonb  NOT NULL
);
CREATE INDEX snis_tags_idx ON snis USING gin (tags);
CREATE INDEX snis_certificate_id_idx ON snis (certificate_id);

CREATE TABLE ca_certificates (
    id          uuid   PRIMARY KEY,
    cert_digest text   UNIQUE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX ca_certificates_tags_idx ON ca_certificates USING gin (tags);

CREATE TABLE key_sets (
    id         uuid   PRIMARY KEY,
    name       text   UNIQUE,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX key_sets_tags_idx ON key_sets USING gin (tags);

-- cache_key is Kong's "keys:<kid>:<set id>": a kid is unique within its
-- set, and among the keys without one. The store never writes it; it is
-- derived from the document.
CREATE TABLE keys (
    id         uuid   PRIMARY KEY,
    name       text   UNIQUE,
    set_id     uuid   REFERENCES key_sets (id) ON DELETE CASCADE,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL,
    cache_key  text   GENERATED ALWAYS AS
        ('keys:' || (doc->>'kid') || ':' || COALESCE(doc->'set'->>'id', '')) STORED UNIQUE
);
CREATE INDEX keys_tags_idx ON keys USING gin (tags);
CREATE INDEX keys_set_id_idx ON keys (set_id);
