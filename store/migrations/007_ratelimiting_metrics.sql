-- 007_ratelimiting_metrics: the rate-limiting plugin's counters for its
-- cluster policy, shared by every node. The table follows Kong 3.9's
-- kong/plugins/rate-limiting/daos.lua and its postgres migrations (000 to
-- 005): one row per identifier, period, window start and the plugin's
-- service and route (all zeros when unscoped), with a ttl after which the
-- row is only garbage.
CREATE TABLE ratelimiting_metrics (
    identifier  text        NOT NULL,
    period      text        NOT NULL,
    period_date timestamptz NOT NULL,
    service_id  uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    route_id    uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'::uuid,
    value       integer,
    ttl         timestamptz,
    PRIMARY KEY (identifier, period, period_date, service_id, route_id)
);
CREATE INDEX ratelimiting_metrics_idx ON ratelimiting_metrics (service_id, route_id, period_date, period);
CREATE INDEX ratelimiting_metrics_ttl_idx ON ratelimiting_metrics (ttl);

-- grapevine_ratelimit_take counts one request in every given period's
-- window and returns each window's count before it. If any window was
-- used up already (limit - count <= 0) it takes the request back out
-- again before returning, so a refused request counts nowhere. The rows
-- stay locked from the first upsert to the end of the caller's
-- transaction, and callers lock them in the same order, so concurrent
-- requests of one identifier are counted one after the other on every
-- node: a limit of L lets exactly L through. Unlike Kong, which reads the
-- usage and increments it later in a timer, this is one round trip.
CREATE OR REPLACE FUNCTION grapevine_ratelimit_take(
    p_identifier text, p_service uuid, p_route uuid,
    p_periods text[], p_dates timestamptz[], p_limits float8[], p_ttls timestamptz[])
RETURNS integer[] LANGUAGE plpgsql AS $$
DECLARE
    counts integer[] := '{}';
    used_up boolean := false;
    c integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_periods, 1), 0) LOOP
        INSERT INTO ratelimiting_metrics AS m
               (identifier, period, period_date, service_id, route_id, value, ttl)
        VALUES (p_identifier, p_periods[i], p_dates[i], p_service, p_route, 1, p_ttls[i])
        ON CONFLICT (identifier, period, period_date, service_id, route_id)
        DO UPDATE SET value = coalesce(m.value, 0) + 1
        RETURNING m.value INTO c;
        counts := counts || (c - 1);
        IF p_limits[i] - (c - 1) <= 0 THEN
            used_up := true;
        END IF;
    END LOOP;
    IF used_up THEN
        UPDATE ratelimiting_metrics SET value = value - 1
         WHERE identifier = p_identifier AND service_id = p_service AND route_id = p_route
           AND (period, period_date) IN (SELECT * FROM unnest(p_periods, p_dates));
    END IF;
    RETURN counts;
END $$;
