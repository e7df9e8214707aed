-- 004_upstreams_targets: load balancing. An upstream is named like a host
-- (unique name, its endpoint key); its targets go with it (Kong's
-- on_delete = cascade). A target's address is unique within its upstream
-- only (Kong's cache_key {upstream, target}), so the constraint on it is
-- over both columns; it is named <table>_<key>_key like a single-column
-- key so the store reports it as the target field's violation.

CREATE TABLE upstreams (
    id                    uuid   PRIMARY KEY,
    name                  text   UNIQUE,
    tags                  text[],
    created_at            bigint,
    updated_at            bigint,
    doc                   jsonb  NOT NULL
);
CREATE INDEX upstreams_tags_idx ON upstreams USING gin (tags);

CREATE TABLE targets (
    id          uuid   PRIMARY KEY,
    target      text,
    upstream_id uuid   REFERENCES upstreams (id) ON DELETE CASCADE,
    tags        text[],
    created_at  bigint,
    updated_at  bigint,
    doc         jsonb  NOT NULL,
    CONSTRAINT targets_target_key UNIQUE (upstream_id, target)
);
CREATE INDEX targets_tags_idx ON targets USING gin (tags);
