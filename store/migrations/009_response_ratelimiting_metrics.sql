-- 009_response_ratelimiting_metrics: the response-ratelimiting plugin's
-- counters for its cluster policy, shared by every node. The table follows
-- Kong 3.9's kong/plugins/response-ratelimiting/migrations/000: one row
-- per identifier, "<limit name>_<period>", window start and the plugin's
-- service and route (all zeros when unscoped). Kong never deletes these
-- rows; here a ttl (the window's end) lets housekeeping drop them, as it
-- does ratelimiting_metrics'.
CREATE TABLE response_ratelimiting_metrics (
    identifier  text        NOT NULL,
    period      text        NOT NULL,
    period_date timestamptz NOT NULL,
    service_id  uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    route_id    uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    value       integer,
    ttl         timestamptz,
    PRIMARY KEY (identifier, period, period_date, service_id, route_id)
);
CREATE INDEX response_ratelimiting_metrics_ttl_idx ON response_ratelimiting_metrics (ttl);
