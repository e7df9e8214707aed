-- 006_upstreams_client_certificate: an upstream's client_certificate
-- becomes a real foreign key once certificates exist (Kong's upstreams.lua:
-- a foreign reference to certificates, restrict on delete), as 005 did for
-- services. Until then it was kept only in the document, so a reference
-- there points at nothing: stop and name the upstreams to fix.
DO $$
DECLARE
    dangling text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO dangling FROM upstreams
     WHERE jsonb_typeof(doc->'client_certificate') = 'object';
    IF dangling IS NOT NULL THEN
        RAISE EXCEPTION 'upstreams % refer to a client_certificate that does not exist; set it to null and run the migration again', dangling;
    END IF;
END $$;

ALTER TABLE upstreams
    ADD COLUMN client_certificate_id uuid REFERENCES certificates (id) ON DELETE RESTRICT;
CREATE INDEX upstreams_client_certificate_id_idx ON upstreams (client_certificate_id);
