package entity

import (
	"fmt"
	"strings"
)

// response-ratelimiting's schema (kong/plugins/response-ratelimiting/
// schema.lua) and its handler's PRIORITY: named limits, each with one or
// more periods, counted by what the upstream's answer says it used.
func init() {
	registerPlugin("response-ratelimiting", 900, []Field{httpProtocolsField(), responseRateLimitingConfig()},
		responseRateLimitingChecks()...)
}

func responseRateLimitingConfig() Field {
	periods := make([]Field, len(ratePeriods))
	for i, p := range ratePeriods {
		periods[i] = Field{Name: p, Type: TypeNumber, Gt: gt(0)}
	}
	limit := &Field{Type: TypeRecord, Required: true, Fields: periods, RecordCheck: checkResponseLimit}
	f := configField(
		strDefault("header_name", "x-kong-limit"),
		strDefault("limit_by", "consumer", "consumer", "credential", "ip"),
		strDefault("policy", "local", "local", "cluster", "redis"),
		boolField("fault_tolerant", true),
		redisConfig(),
		boolField("block_on_first_violation", false),
		boolField("hide_client_headers", false),
		Field{Name: "limits", Type: TypeMap, Required: true, LenMin: 1, Keys: &Field{Type: TypeString}, Values: limit},
	)
	f.Shorthands = redisShorthands("response-ratelimiting")
	return f
}

func responseRateLimitingChecks() []Check {
	whenRedis := func(field string) Check {
		return Conditional{If: "config.policy", IfMatch: Match{Eq: "redis"}, Then: "config.redis." + field, ThenMatch: Match{Required: true}}
	}
	return []Check{whenRedis("host"), whenRedis("port"), whenRedis("timeout")}
}

// checkResponseLimit is one named limit's entity check (at least one
// period) and its validate_periods_order: a longer period may not allow
// less.
func checkResponseLimit(limit map[string]any) string {
	set := false
	for _, p := range ratePeriods {
		set = set || limit[p] != nil
	}
	if !set {
		return "at least one of these fields must be non-empty: '" + strings.Join(ratePeriods, "', '") + "'"
	}
	for i, lower := range ratePeriods {
		v1, ok := toNumber(limit[lower])
		if limit[lower] == nil || !ok {
			continue
		}
		for _, upper := range ratePeriods[i+1:] {
			if v2, ok := toNumber(limit[upper]); limit[upper] != nil && ok && v2 < v1 {
				return fmt.Sprintf("the limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)", upper, v2, lower, v1)
			}
		}
	}
	return ""
}
