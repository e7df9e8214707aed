package entity

import (
	"sort"
	"sync"

	"github.com/grapevine-gw/grapevine/internal/luasandbox"
)

// httpProtocols are the protocols a plugin runs on by default
// (typedefs.protocols in kong/db/schema/typedefs.lua).
var httpProtocols = []any{"grpc", "grpcs", "http", "https"}

// Plugins is Kong's plugins schema (kong/db/schema/entities/plugins.lua):
// one instance per name and scope (global, or a route, service, consumer
// and their combinations), deleted with what it is scoped to. Its config
// is specialised by the plugin's own schema, picked by name. ordering is
// Kong Enterprise's dynamic ordering (before/after per phase), accepted
// and kept as clients such as decK send it.
var Plugins = &Schema{
	Name:        "plugins",
	EndpointKey: "instance_name",
	CacheKey:    []string{"name", "route", "service", "consumer"},
	Fields: []Field{
		uuidField("id"),
		{Name: "name", Type: TypeString, Required: true},
		utf8NameField("instance_name"),
		timestampField("created_at"),
		timestampField("updated_at"),
		{Name: "route", Type: TypeForeign, Reference: "routes", OnDelete: OnDeleteCascade},
		{Name: "service", Type: TypeForeign, Reference: "services", OnDelete: OnDeleteCascade},
		{Name: "consumer", Type: TypeForeign, Reference: "consumers", OnDelete: OnDeleteCascade},
		{Name: "config", Type: TypeRecord, Abstract: true},
		allProtocolsField(),
		{Name: "enabled", Type: TypeBoolean, Required: true, Default: true},
		tagsField(),
		{Name: "ordering", Type: TypeRecord, Fields: []Field{orderingPhases("before"), orderingPhases("after")}},
	},
	SubschemaKey:   "name",
	Subschema:      pluginSubschema,
	SubschemaError: "plugin '%s' not enabled; add it to the 'plugins' configuration property",
}

func orderingPhases(name string) Field {
	return Field{Name: name, Type: TypeMap, Keys: &Field{Type: TypeString, OneOf: []any{"access"}},
		Values: &Field{Type: TypeArray, Elements: &Field{Type: TypeString}}}
}

// Plugin is Kong's plugin entity.
type Plugin struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	InstanceName *string        `json:"instance_name"`
	CreatedAt    int64          `json:"created_at"`
	UpdatedAt    int64          `json:"updated_at"`
	Route        *ForeignKey    `json:"route"`
	Service      *ForeignKey    `json:"service"`
	Consumer     *ForeignKey    `json:"consumer"`
	Config       map[string]any `json:"config"`
	Protocols    []string       `json:"protocols"`
	Enabled      bool           `json:"enabled"`
	Tags         []string       `json:"tags"`
	Ordering     map[string]any `json:"ordering"`
}

// PluginDef is one plugin Grapevine knows: its handler's PRIORITY and
// VERSION and its schema (kong/plugins/<name>/schema.lua): the plugin
// fields it specialises (config always; consumer, protocols and others
// when the plugin restricts them) and its entity checks.
type PluginDef struct {
	Name     string
	Priority int
	Version  string
	Schema   *Schema
}

// pluginDefs holds every plugin whose schema Grapevine ships, by name.
var pluginDefs struct {
	mu   sync.RWMutex
	defs map[string]*PluginDef
}

// registerPlugin adds a plugin definition; the schema's name is the
// plugin's.
func registerPlugin(name string, priority int, fields []Field, checks ...Check) {
	def := &PluginDef{Name: name, Priority: priority, Version: KongVersion,
		Schema: &Schema{Name: name, Fields: fields, Checks: checks}}
	pluginDefs.mu.Lock()
	defer pluginDefs.mu.Unlock()
	if pluginDefs.defs == nil {
		pluginDefs.defs = map[string]*PluginDef{}
	}
	pluginDefs.defs[name] = def
}

// PluginByName returns the definition of a plugin Grapevine ships.
func PluginByName(name string) (*PluginDef, bool) {
	pluginDefs.mu.RLock()
	defer pluginDefs.mu.RUnlock()
	def, ok := pluginDefs.defs[name]
	return def, ok
}

// PluginNames lists every plugin Grapevine ships, sorted.
func PluginNames() []string {
	pluginDefs.mu.RLock()
	defer pluginDefs.mu.RUnlock()
	names := make([]string, 0, len(pluginDefs.defs))
	for n := range pluginDefs.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func pluginSubschema(name string) *Schema {
	if def, ok := PluginByName(name); ok {
		return def.Schema
	}
	return nil
}

// Field helpers of kong/db/schema/typedefs.lua that plugin schemas use.

// noConsumer is typedefs.no_consumer: the plugin cannot be scoped to a
// consumer.
func noConsumer() Field {
	return Field{Name: "consumer", Type: TypeForeign, Reference: "consumers", MustBeNull: true}
}

// httpProtocolsField is typedefs.protocols_http.
func httpProtocolsField() Field {
	return Field{Name: "protocols", Type: TypeSet, Required: true, Default: httpProtocols,
		Elements: &Field{Type: TypeString, OneOf: httpProtocols}}
}

// allProtocolsField is typedefs.protocols.
func allProtocolsField() Field {
	return Field{Name: "protocols", Type: TypeSet, Required: true, Default: httpProtocols,
		Elements: &Field{Type: TypeString, OneOf: protocolNames}}
}

// configField is a plugin's config record.
func configField(fields ...Field) Field {
	return Field{Name: "config", Type: TypeRecord, Required: true, Fields: fields}
}

// record is a nested record of a plugin's config: Kong treats records as
// required and fills them from their fields' defaults.
func record(name string, fields ...Field) Field {
	return Field{Name: name, Type: TypeRecord, Required: true, Fields: fields}
}

func str(name string) Field { return Field{Name: name, Type: TypeString} }

func strDefault(name, def string, oneOf ...any) Field {
	return Field{Name: name, Type: TypeString, Default: def, OneOf: oneOf}
}

func boolField(name string, def bool) Field {
	return Field{Name: name, Type: TypeBoolean, Required: true, Default: def}
}

func number(name string, def any) Field {
	return Field{Name: name, Type: TypeNumber, Default: def}
}

func stringArray(name string, def []any) Field {
	return Field{Name: name, Type: TypeArray, Default: anyDefault(def), Elements: &Field{Type: TypeString}}
}

func stringSet(name string, def []any) Field {
	return Field{Name: name, Type: TypeSet, Default: anyDefault(def), Elements: &Field{Type: TypeString}}
}

// anyDefault keeps "no default" a nil interface: a nil []any stored in
// Default would be a default of [] (and "default": null in the schema),
// where Kong's field without a default stays null and decK's diff shows
// null against [] for ever (cors headers, exposed_headers).
func anyDefault(def []any) any {
	if def == nil {
		return nil
	}
	return def
}

// headerNameField is typedefs.header_name.
func headerNameField(name string) Field {
	return Field{Name: name, Type: TypeString, Check: checkPluginHeaderName}
}

func checkPluginHeaderName(v any) string {
	s := v.(string)
	if !headerNameRe.MatchString(s) {
		return "bad header name '" + s + "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
	}
	return ""
}

// luaCodeField is typedefs.lua_code: a map of names to Lua snippets,
// each of which must load in the sandbox (validate_lua_expression).
func luaCodeField(name string) Field {
	return Field{Name: name, Type: TypeMap, Keys: &Field{Type: TypeString, LenMin: 1},
		Values: &Field{Type: TypeString, LenMin: 1, Check: checkLuaCode}}
}

// checkLuaCode is kong/tools/sandbox.lua's validate_safe: the code is
// compiled, never run.
func checkLuaCode(v any) string {
	if _, err := luasandbox.Compile(v.(string)); err != nil {
		return err.Error()
	}
	return ""
}
