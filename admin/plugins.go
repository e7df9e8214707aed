package admin

import (
	"context"
	"net/http"
	"sort"

	"github.com/grapevine-gw/grapevine/entity"
)

// matchPlugins serves the plugin endpoints beside the plugins kind's own
// (kong/api/routes/plugins.lua and kong.lua): GET /plugins/enabled,
// GET /schemas/plugins/{name}, POST /schemas/plugins/validate and the
// deprecated GET /plugins/schema/{name}.
func (s *Server) matchPlugins(segs []string) methods {
	switch {
	case len(segs) == 2 && segs[0] == "plugins" && segs[1] == "enabled":
		return methods{http.MethodGet: s.handleEnabledPlugins}
	case len(segs) == 3 && segs[0] == "plugins" && segs[1] == "schema":
		return methods{http.MethodGet: pluginConfigSchemaHandler(segs[2])}
	case len(segs) == 3 && segs[0] == "schemas" && segs[1] == "plugins":
		ms := methods{http.MethodGet: pluginSchemaHandler(segs[2])}
		if segs[2] == "validate" {
			ms[http.MethodPost] = s.validateHandler("plugins")
		}
		return ms
	}
	return nil
}

// handleEnabledPlugins is GET /plugins/enabled: every plugin this node
// can run.
func (s *Server) handleEnabledPlugins(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"enabled_plugins": entity.PluginNames()})
}

// pluginSchemaHandler is GET /schemas/plugins/{name}: the plugin's own
// schema, the fields it specialises and its checks.
func pluginSchemaHandler(name string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		def, ok := entity.PluginByName(name)
		if !ok {
			writeMessage(w, http.StatusNotFound, "No plugin named '"+name+"'")
			return
		}
		writeJSON(w, http.StatusOK, def.Schema.JSON())
	}
}

// pluginConfigSchemaHandler is the deprecated GET /plugins/schema/{name}:
// the config record alone.
func pluginConfigSchemaHandler(name string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		def, ok := entity.PluginByName(name)
		if !ok {
			writeMessage(w, http.StatusNotFound, "No plugin named '"+name+"'")
			return
		}
		writeJSON(w, http.StatusOK, def.Schema.FieldJSON("config"))
	}
}

// availablePlugins is GET /'s plugins.available_on_server.
func availablePlugins() map[string]any {
	out := map[string]any{}
	for _, name := range entity.PluginNames() {
		def, _ := entity.PluginByName(name)
		out[name] = map[string]any{"version": def.Version, "priority": def.Priority}
	}
	return out
}

// pluginsInCluster is GET /'s plugins.enabled_in_cluster: the distinct
// names of the configured plugins.
func (s *Server) pluginsInCluster(ctx context.Context) ([]string, error) {
	names := []string{}
	if s.st == nil {
		return names, nil
	}
	k, ok := s.kinds.byTable["plugins"]
	if !ok {
		return names, nil
	}
	rows, err := s.st.All(ctx, k.table)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, row := range rows {
		doc, err := decodeDoc(row.Doc)
		if err != nil {
			continue
		}
		if name, ok := doc["name"].(string); ok && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names) // rows come in id order, which means nothing
	return names, nil
}
