-- 008_credential_ttl: Kong's ttl option for key-auth credentials (their
-- schema has ttl = true, kong/plugins/key-auth/daos.lua). The column holds
-- when a row expires (NULL: never); reads leave out expired rows and the
-- nodes' housekeeping deletes them, which the index keeps cheap.

ALTER TABLE keyauth_credentials ADD COLUMN ttl timestamptz;
CREATE INDEX keyauth_credentials_ttl_idx ON keyauth_credentials (ttl);
