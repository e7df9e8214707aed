package entity

// TargetDefaultPort is the port of a target given without one (Kong's
// DEFAULT_PORT in kong/db/dao/targets.lua).
const TargetDefaultPort = 8000

// Targets is Kong's targets schema (kong/db/schema/entities/targets.lua):
// one host:port behind an upstream with its weight. A target is unique
// within its upstream (Kong's cache_key {upstream, target}) and named by
// it under /upstreams/{u}/targets/{t}; Kong serves targets only there.
var Targets = &Schema{
	Name:        "targets",
	EndpointKey: "target",
	KeyScope:    "upstream",
	// Kong's cache_key, for the ids of a declarative file's targets.
	KongCacheKey: []string{"upstream", "target"},
	Fields: []Field{
		uuidField("id"),
		timestampMsField("created_at"),
		timestampMsField("updated_at"),
		{Name: "upstream", Type: TypeForeign, Reference: "upstreams", Required: true, OnDelete: OnDeleteCascade},
		{Name: "target", Type: TypeString, Required: true, Check: checkTarget, MaxBytes: MaxIndexedBytes},
		{Name: "weight", Type: TypeInteger, Default: int64(100), Between: []int64{0, 65535}},
		tagsField(),
	},
	Prepare: formatTarget,
}

// timestampMsField is typedefs.auto_timestamp_ms: seconds with
// millisecond precision, a number.
func timestampMsField(name string) Field {
	return Field{Name: name, Type: TypeNumber, Timestamp: true, Auto: true}
}

// checkTarget is Kong's validate_target: an ip or host name with an
// optional port.
func checkTarget(v any) string {
	s := v.(string)
	if _, err := parseHostAddr(s); err == "" {
		return ""
	}
	if checkUTF8(s) != "" {
		return "Invalid target; not a valid hostname or ip address"
	}
	return "Invalid target ('" + s + "'); not a valid hostname or ip address"
}

// formatTarget stores a valid target the way Kong's targets DAO writes
// and reads it: normalised, with the default port when none was given
// ("10.0.0.1" becomes "10.0.0.1:8000", "::1" becomes
// "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"). An invalid one is
// left for checkTarget to report.
func formatTarget(doc map[string]any) {
	if s, ok := doc["target"].(string); ok {
		if formatted := FormatTarget(s); formatted != "" {
			doc["target"] = formatted
		}
	}
}

// FormatTarget is a target as Kong stores it, or "" when s is not one.
func FormatTarget(s string) string {
	a, err := parseHostAddr(s)
	if err != "" {
		return ""
	}
	return a.withPort(TargetDefaultPort)
}

// Target is Kong's target entity: one address of an upstream's balancer.
type Target struct {
	ID        string      `json:"id"`
	CreatedAt float64     `json:"created_at"`
	UpdatedAt float64     `json:"updated_at"`
	Upstream  *ForeignKey `json:"upstream"`
	Target    string      `json:"target"`
	Weight    int         `json:"weight"`
	Tags      []string    `json:"tags"`
}
