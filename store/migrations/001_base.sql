-- 001_base: the cluster's change log and the first entities.
-- Every entity table has the same shape: indexed columns the store filters
-- on, and the entity's whole JSON document in doc. Later migrations add
-- consumers, plugins, upstreams, targets, certificates and nodes the same way
-- (one NNN_name.sql file each, never editing an applied file).

CREATE TABLE cluster_events (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    node_id   text        NOT NULL DEFAULT '',
    entity    text        NOT NULL,
    entity_id uuid        NOT NULL,
    op        text        NOT NULL CHECK (op IN ('create', 'update', 'delete'))
);

CREATE TABLE services (
    id         uuid   PRIMARY KEY,
    name       text   UNIQUE,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX services_tags_idx ON services USING gin (tags);

CREATE TABLE routes (
    id         uuid   PRIMARY KEY,
    name       text   UNIQUE,
    service_id uuid   REFERENCES services (id) ON DELETE RESTRICT,
    tags       text[],
    created_at bigint,
    updated_at bigint,
    doc        jsonb  NOT NULL
);
CREATE INDEX routes_tags_idx ON routes USING gin (tags);
CREATE INDEX routes_service_id_idx ON routes (service_id);
