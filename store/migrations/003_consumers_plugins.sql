-- 003_consumers_plugins: consumers, their credentials (one table per
-- bundled auth plugin, as Kong's daos.lua files) and plugins. Credentials
-- go with their consumer (ON DELETE CASCADE, Kong's on_delete); the store
-- deletes them first itself so that each delete records its event, and the
-- database's cascade is the backstop. A composite cache key (Kong's
-- cache_key: an acl's consumer and group) is one unique text column.

CREATE TABLE consumers (
    id         uuid   PRIMARY KEY,
    username   text   UNIQUE,
    custom_id  text   UNIQUE,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX consumers_tags_idx ON consumers USING gin (tags);

CREATE TABLE keyauth_credentials (
    id          uuid   PRIMARY KEY,
    key         text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX keyauth_credentials_tags_idx ON keyauth_credentials USING gin (tags);
CREATE INDEX keyauth_credentials_consumer_id_idx ON keyauth_credentials (consumer_id);

CREATE TABLE basicauth_credentials (
    id          uuid   PRIMARY KEY,
    username    text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX basicauth_credentials_tags_idx ON basicauth_credentials USING gin (tags);
CREATE INDEX basicauth_credentials_consumer_id_idx ON basicauth_credentials (consumer_id);

CREATE TABLE hmacauth_credentials (
    id          uuid   PRIMARY KEY,
    username    text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX hmacauth_credentials_tags_idx ON hmacauth_credentials USING gin (tags);
CREATE INDEX hmacauth_credentials_consumer_id_idx ON hmacauth_credentials (consumer_id);

CREATE TABLE jwt_secrets (
    id          uuid   PRIMARY KEY,
    key         text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX jwt_secrets_tags_idx ON jwt_secrets USING gin (tags);
CREATE INDEX jwt_secrets_consumer_id_idx ON jwt_secrets (consumer_id);

CREATE TABLE acls (
    id          uuid   PRIMARY KEY,
    cache_key   text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX acls_tags_idx ON acls USING gin (tags);
CREATE INDEX acls_consumer_id_idx ON acls (consumer_id);

CREATE TABLE oauth2_credentials (
    id          uuid   PRIMARY KEY,
    client_id   text   UNIQUE,
    consumer_id uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL
);
CREATE INDEX oauth2_credentials_tags_idx ON oauth2_credentials USING gin (tags);
CREATE INDEX oauth2_credentials_consumer_id_idx ON oauth2_credentials (consumer_id);

-- One instance per plugin name and scope: cache_key holds the name and the
-- route, service and consumer ids together (entity.CacheKeyOf).
CREATE TABLE plugins (
    id            uuid   PRIMARY KEY,
    instance_name text   UNIQUE,
    cache_key     text   UNIQUE,
    route_id      uuid   REFERENCES routes (id) ON DELETE CASCADE,
    service_id    uuid   REFERENCES services (id) ON DELETE CASCADE,
    consumer_id   uuid   REFERENCES consumers (id) ON DELETE CASCADE,
    tags          text[],
    created_at    bigint,
    updated_at    bigint,
    doc           jsonb  NOT NULL
);
CREATE INDEX plugins_tags_idx ON plugins USING gin (tags);
CREATE INDEX plugins_route_id_idx ON plugins (route_id);
CREATE INDEX plugins_service_id_idx ON plugins (service_id);
CREATE INDEX plugins_consumer_id_idx ON plugins (consumer_id);
