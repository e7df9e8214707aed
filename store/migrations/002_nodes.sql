-- 002_nodes: the cluster's node registry, and an index for purging old
-- cluster_events by age. Times come from the database clock (now()), never
-- a node's, so that skewed node clocks cannot purge live rows.

CREATE TABLE nodes (
    name         text        PRIMARY KEY,
    cluster_addr text        NOT NULL,
    proxy_addr   text        NOT NULL DEFAULT '',
    admin_addr   text        NOT NULL DEFAULT '',
    hostname     text        NOT NULL DEFAULT '',
    version      text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cluster_events_at_idx ON cluster_events (at);
