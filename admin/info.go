package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/store"
)

// handleRoot is GET /: the keys go-kong and decK read (version,
// configuration.database, router_flavor, proxy_listeners) in Kong's shape.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	inCluster, err := s.pluginsInCluster(ctx)
	if err != nil {
		// Kong answers 500 here; GET / also tells clients the version and
		// must keep doing so while the database is away (the proxy serves
		// on), so the list is left empty instead.
		s.log.Warn().Err(err).Msg("GET /: listing the plugins in use")
		inCluster = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tagline":       "Welcome to kong",
		"version":       s.cfg.Version,
		"edition":       "community",
		"hostname":      s.hostname(),
		"node_id":       s.cfg.NodeID,
		"lua_version":   "",
		"timers":        map[string]any{"running": 0, "pending": 0},
		"plugins":       map[string]any{"available_on_server": availablePlugins(), "enabled_in_cluster": inCluster},
		"configuration": s.configuration(),
		"pids":          map[string]any{"master": os.Getpid(), "workers": []int{os.Getpid()}},
	})
}

func (s *Server) hostname() string {
	if s.cfg.Hostname != "" {
		return s.cfg.Hostname
	}
	h, _ := os.Hostname()
	return h
}

// configuration copies the node's configuration and adds Kong's keys that
// clients rely on when the node did not set them.
func (s *Server) configuration() map[string]any {
	c := make(map[string]any, len(s.cfg.Configuration)+6)
	for k, v := range s.cfg.Configuration {
		c[k] = v
	}
	defaults := map[string]any{
		"database":        "postgres",
		"router_flavor":   "traditional_compatible",
		"proxy_listen":    listenEntries(s.cfg.ProxyListen),
		"proxy_listeners": listeners(s.cfg.ProxyListen),
		"admin_listen":    listenEntries(s.cfg.Listen),
		"admin_listeners": listeners(s.cfg.Listen),
	}
	for k, v := range defaults {
		if _, ok := c[k]; !ok {
			c[k] = v
		}
	}
	return c
}

// listenEntries are a listen value's entries as written.
func listenEntries(v string) []string {
	ls, _ := listen.Parse(v)
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Entry
	}
	return out
}

// listeners renders Kong's parsed listener objects for "ip:port flags…".
func listeners(v string) []map[string]any {
	out := []map[string]any{}
	ls, _ := listen.Parse(v)
	for _, l := range ls {
		m := map[string]any{"ip": l.Host, "port": l.Port, "listener": l.Entry}
		for _, flag := range []string{"ssl", "http2", "proxy_protocol", "deferred", "reuseport", "bind"} {
			m[flag] = l.Has(flag)
		}
		m["backlog=%d+"] = l.Has("backlog")
		out = append(out, m)
	}
	return out
}

// handleStatus is GET /status; the database is reachable when it pings
// within PingTimeout and the node does not hold it for down (DBOutage), so
// that writes are taken whenever /status says reachable.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PingTimeout)
	defer cancel()
	knownDown := s.cfg.DBOutage != nil && s.cfg.DBOutage().Err() != nil
	reachable := s.st != nil && !knownDown && s.st.Ping(ctx) == nil
	var st ServerStats
	if s.cfg.Stats != nil {
		st = s.cfg.Stats()
	}
	body := map[string]any{
		"database": map[string]any{"reachable": reachable},
		"memory":   map[string]any{"lua_shared_dicts": map[string]any{}, "workers_lua_vms": []any{}},
		"server": map[string]any{
			"connections_accepted": st.ConnectionsAccepted,
			"connections_active":   st.ConnectionsActive,
			"connections_handled":  st.ConnectionsHandled,
			"connections_reading":  st.ConnectionsReading,
			"connections_waiting":  st.ConnectionsWaiting,
			"connections_writing":  st.ConnectionsWriting,
			"total_requests":       st.TotalRequests,
		},
		// Not in Kong: whether the proxy accepts connections, for health checks.
		"proxy": proxyStatus(st),
	}
	switch {
	case s.dbless():
		addDeclarativeSource(body, s.cfg.DBLess.Config.Hash())
	case s.cfg.Source != nil:
		addSource(body, s.cfg.Source(), time.Now())
	}
	writeJSON(w, http.StatusOK, body)
}

// ConfigSource is where the configuration a node serves comes from.
type ConfigSource struct {
	FromCache bool      // serving the on-disk cache: the database has not answered since start
	Hash      string    // the config hash served
	CachedAt  time.Time // when the cache was written; zero unless FromCache
}

// addSource adds the configuration's source to a /status body. Kong 3.9
// reports configuration_hash on DB-less and data plane nodes
// (kong/api/routes/health.lua); the source and the cache's age are
// Grapevine's, so an operator sees a node serving a stale cache.
func addSource(body map[string]any, src ConfigSource, now time.Time) {
	body["configuration_hash"] = src.Hash
	if !src.FromCache {
		body["configuration_source"] = "database"
		return
	}
	body["configuration_source"] = "cache"
	body["configuration_cached_at"] = src.CachedAt.UTC().Format(time.RFC3339)
	body["configuration_age_seconds"] = int64(now.Sub(src.CachedAt).Seconds())
}

func proxyStatus(st ServerStats) map[string]any {
	if st.ProxyAcceptError == "" {
		return map[string]any{"accepting": true}
	}
	return map[string]any{"accepting": false, "accept_error": st.ProxyAcceptError,
		"failing_since": st.ProxyAcceptFailingSince.UTC().Format(time.RFC3339)}
}

// handleEndpoints is GET /endpoints: every path with {placeholders}.
func (s *Server) handleEndpoints(w http.ResponseWriter, r *http.Request) {
	paths := []string{"/", "/config", "/endpoints", "/status", "/tags", "/tags/{tags}",
		"/plugins/enabled", "/plugins/schema/{name}", "/schemas/plugins/{name}", "/schemas/plugins/validate",
		"/schemas/{db_entity_name}", "/schemas/{db_entity_name}/validate",
		"/cluster", "/cluster/nodes/{name}", "/cluster/reachability", "/cluster/keys", "/cluster/keys/use", "/cluster/keys/remove"}
	for _, k := range s.kinds.order {
		item := "/" + k.name + "/{" + k.name + "}"
		if !k.nestedOnly {
			paths = append(paths, "/"+k.name, item)
		}
		for _, f := range k.table.Foreign {
			parent, ok := s.kinds.byTable[f.Table]
			if !ok {
				continue
			}
			if !k.nestedOnly {
				paths = append(paths, item+"/"+f.Field)
			}
			nested := "/" + parent.name + "/{" + parent.name + "}/" + k.nested
			paths = append(paths, nested, nested+"/{"+k.name+"}")
		}
	}
	if s.matchTargets([]string{"upstreams", "u", "targets", "all"}) != nil {
		paths = append(paths, targetsAllPath)
	}
	if s.cfg.Health != nil {
		paths = append(paths, healthPaths...)
	}
	sort.Strings(paths)
	writeJSON(w, http.StatusOK, map[string]any{"data": paths})
}

func (s *Server) schemaHandler(name string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		if k, ok := s.kinds.byTable[name]; ok {
			writeJSON(w, http.StatusOK, k.schema.JSON())
			return
		}
		if name == entity.Tags.Name {
			writeJSON(w, http.StatusOK, entity.Tags.JSON())
			return
		}
		writeMessage(w, http.StatusNotFound, "No entity named '"+name+"'")
	}
}

// validateHandler is POST /schemas/{name}/validate: schema only, no
// foreign key existence check.
func (s *Server) validateHandler(name string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		k, ok := s.kinds.byTable[name]
		if !ok {
			writeMessage(w, http.StatusNotFound, "No entity named '"+name+"'")
			return
		}
		in, err := readBody(r, k)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, verr := k.schema.Validate(in); verr != nil {
			s.writeError(w, r, verr)
			return
		}
		writeMessage(w, http.StatusOK, "schema validation successful")
	}
}

// tagRef is one element of GET /tags.
type tagRef struct {
	Tag        string `json:"tag"`
	EntityName string `json:"entity_name"`
	EntityID   string `json:"entity_id"`
}

// tagsPage is the body of GET /tags: Kong's collection shape.
type tagsPage struct {
	Data   []tagRef `json:"data"`
	Next   *string  `json:"next"`
	Offset string   `json:"offset,omitempty"`
}

// tagsHandler is GET /tags and GET /tags/{tag}, paged by size and offset
// like every collection, in (entity_id, tag) order.
func (s *Server) tagsHandler(only string) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		if only != "" {
			if kerr := entity.TagLookupError(only); kerr != nil {
				s.writeError(w, r, kerr)
				return
			}
		}
		q := r.URL.Query()
		page, err := parsePage(q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx, cancel := s.dbContext(r)
		defer cancel()
		refs, err := s.tagRefs(ctx, only)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		start := 0
		if page.Offset != "" {
			last, err := decodeTagOffset(page.Offset)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			start = sort.Search(len(refs), func(i int) bool { return last.before(refs[i]) })
		}
		end := min(start+page.Size, len(refs))
		body := tagsPage{Data: refs[start:end]}
		if end < len(refs) {
			body.Offset = encodeTagOffset(refs[end-1])
			base := "/tags"
			if only != "" {
				base += "/" + url.PathEscape(only)
			}
			next := nextPath(base, body.Offset, q, true)
			body.Next = &next
		}
		writeJSON(w, http.StatusOK, body)
	}
}

// tagRefs lists every tag of every entity (only the tag only, when set),
// sorted by entity id, then tag.
func (s *Server) tagRefs(ctx context.Context, only string) ([]tagRef, error) {
	refs := []tagRef{}
	for _, k := range s.kinds.order {
		rows, err := s.st.All(ctx, k.table)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			for _, t := range row.Tags {
				if only == "" || t == only {
					refs = append(refs, tagRef{Tag: t, EntityName: k.table.Name, EntityID: row.ID})
				}
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].before(refs[j]) })
	return refs, nil
}

func (a tagRef) before(b tagRef) bool {
	if a.EntityID != b.EntityID {
		return a.EntityID < b.EntityID
	}
	return a.Tag < b.Tag
}

// The offset of GET /tags holds the last key served, [entity_id, tag].
func encodeTagOffset(last tagRef) string {
	return store.EncodeOffsetKey(last.EntityID, last.Tag)
}

func decodeTagOffset(offset string) (tagRef, error) {
	key, err := store.DecodeOffsetKey(offset)
	var oe *store.OffsetError
	if errors.As(err, &oe) {
		return tagRef{}, entity.InvalidOffset(offset, oe.Reason)
	}
	if err != nil || len(key) != 2 {
		return tagRef{}, entity.InvalidOffset(offset, store.OffsetBadJSON)
	}
	return tagRef{EntityID: key[0], Tag: key[1]}, nil
}
