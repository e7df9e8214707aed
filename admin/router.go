package admin

import (
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
)

// handler serves one (path, method) once the path's parameters are known.
type handler func(w http.ResponseWriter, r *http.Request)

// methods maps HTTP methods to handlers for one path.
type methods map[string]handler

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &latencyWriter{ResponseWriter: w, start: start}
	h := lw.Header()
	h.Set("Server", "grapevine/"+s.cfg.ServerVersion)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Content-Type", contentTypeJSON)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error().Interface("panic", p).Str("path", r.URL.Path).Bytes("stack", debug.Stack()).Msg("admin handler panicked")
			writeMessage(lw, http.StatusInternalServerError, "An unexpected error occurred")
		}
	}()
	// nginx's client_max_body_size: a declared length over the limit is
	// refused before a byte of the body is read (and before Go's server
	// would send 100 Continue); a chunked body stops at the limit.
	if r.ContentLength > s.cfg.MaxBodySize {
		s.writeError(lw, r, errPayloadTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(lw, r.Body, s.cfg.MaxBodySize)
	ms := s.match(splitPath(r.URL.Path))
	if ms == nil {
		writeMessage(lw, http.StatusNotFound, "Not found")
		return
	}
	s.dispatch(lw, r, ms)
}

// dispatch picks the method's handler; HEAD runs GET without a body and
// OPTIONS answers 204 with the allowed methods.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, ms methods) {
	switch r.Method {
	case http.MethodOptions:
		allow := allowed(ms)
		w.Header().Set("Allow", allow)
		w.Header().Set("Access-Control-Allow-Methods", allow)
		w.Header().Set("X-Kong-Admin-Latency", "0")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodHead:
		if get, ok := ms[http.MethodGet]; ok {
			get(headWriter{w}, r)
			return
		}
	}
	h, ok := ms[r.Method]
	if !ok {
		writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	h(w, r)
}

func allowed(ms methods) string {
	list := []string{http.MethodOptions}
	for m := range ms {
		list = append(list, m)
	}
	if _, ok := ms[http.MethodGet]; ok {
		list = append(list, http.MethodHead)
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}

// splitPath tolerates a trailing slash and repeated slashes.
func splitPath(p string) []string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// match resolves a path to its methods, or nil for "Not found".
func (s *Server) match(segs []string) methods {
	if len(segs) == 0 {
		return methods{http.MethodGet: s.handleRoot}
	}
	if ms := s.matchInfo(segs); ms != nil {
		return ms
	}
	if ms := s.matchPlugins(segs); ms != nil {
		return ms
	}
	if ms := s.matchCluster(segs); ms != nil {
		return ms
	}
	if ms := s.matchHealth(segs); ms != nil {
		return ms
	}
	if ms := s.matchTargets(segs); ms != nil {
		return ms
	}
	k, ok := s.kinds.byPath[segs[0]]
	if !ok || k.nestedOnly {
		return nil
	}
	if len(segs) >= 2 && !entity.IsUUID(segs[1]) && hooksOf(k).resolveRef != nil {
		return s.resolvingMethods(k, segs)
	}
	return s.matchKind(k, segs)
}

// matchKind resolves the path of kind k's collection, entities and
// nested endpoints.
func (s *Server) matchKind(k *kind, segs []string) methods {
	switch len(segs) {
	case 1:
		return s.collectionMethods(k, nil)
	case 2:
		return s.entityMethods(k, segs[1], nil)
	case 3:
		return s.matchSub(k, segs[1], segs[2])
	case 4:
		return s.matchNestedEntity(k, segs[1], segs[2], segs[3])
	}
	return nil
}

func (s *Server) matchInfo(segs []string) methods {
	switch {
	case len(segs) == 1 && segs[0] == "status":
		return methods{http.MethodGet: s.handleStatus}
	case len(segs) == 1 && segs[0] == "config":
		return methods{http.MethodGet: s.handleConfig, http.MethodPost: s.handleConfig}
	case len(segs) == 1 && segs[0] == "endpoints":
		return methods{http.MethodGet: s.handleEndpoints}
	case len(segs) == 1 && segs[0] == "metrics" && s.cfg.Metrics != nil:
		return methods{http.MethodGet: s.handleMetrics}
	case len(segs) == 1 && segs[0] == "tags":
		return methods{http.MethodGet: s.tagsHandler("")}
	case len(segs) == 2 && segs[0] == "tags":
		return methods{http.MethodGet: s.tagsHandler(segs[1])}
	case len(segs) == 2 && segs[0] == "schemas":
		return methods{http.MethodGet: s.schemaHandler(segs[1])}
	case len(segs) == 3 && segs[0] == "schemas" && segs[2] == "validate":
		return methods{http.MethodPost: s.validateHandler(segs[1])}
	}
	return nil
}

// matchSub is /parent/{p}/children or /child/{c}/foreignfield.
func (s *Server) matchSub(k *kind, id, sub string) methods {
	if f, ok := k.foreign(sub); ok {
		if slices.Contains(k.noForeign, f.Field) {
			return nil // Kong's endpoints.disable: "Not found"
		}
		if parent, ok := s.kinds.byTable[f.Table]; ok {
			return s.foreignMethods(k, id, f.Field, parent)
		}
	}
	child, ok := s.kinds.nested[sub]
	if !ok {
		return nil
	}
	f, ok := child.foreignTo(k.table.Name)
	if !ok {
		return nil
	}
	return s.collectionMethods(child, &nesting{parent: k, parentRef: id, field: f.Field})
}

func (s *Server) matchNestedEntity(k *kind, id, sub, childRef string) methods {
	child, ok := s.kinds.nested[sub]
	if !ok {
		return nil
	}
	f, ok := child.foreignTo(k.table.Name)
	if !ok {
		return nil
	}
	return s.entityMethods(child, childRef, &nesting{parent: k, parentRef: id, field: f.Field})
}

// nesting is the parent part of /parent/{p}/children[/{c}].
type nesting struct {
	parent    *kind
	parentRef string // id or endpoint key as given in the path
	field     string // the child's foreign field pointing at the parent
}

func (s *Server) collectionMethods(k *kind, n *nesting) methods {
	return methods{
		http.MethodGet:  func(w http.ResponseWriter, r *http.Request) { s.listEntities(w, r, k, n) },
		http.MethodPost: func(w http.ResponseWriter, r *http.Request) { s.createEntity(w, r, k, n) },
	}
}

func (s *Server) entityMethods(k *kind, ref string, n *nesting) methods {
	return methods{
		http.MethodGet:    func(w http.ResponseWriter, r *http.Request) { s.getEntity(w, r, k, ref, n) },
		http.MethodPut:    func(w http.ResponseWriter, r *http.Request) { s.putEntity(w, r, k, ref, n) },
		http.MethodPatch:  func(w http.ResponseWriter, r *http.Request) { s.patchEntity(w, r, k, ref, n) },
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { s.deleteEntity(w, r, k, ref, n) },
	}
}

func (s *Server) foreignMethods(k *kind, ref, field string, parent *kind) methods {
	fe := foreignEndpoint{child: k, childRef: ref, field: field, parent: parent}
	return methods{
		http.MethodGet:    func(w http.ResponseWriter, r *http.Request) { s.getForeign(w, r, fe) },
		http.MethodPut:    func(w http.ResponseWriter, r *http.Request) { s.putForeign(w, r, fe) },
		http.MethodPatch:  func(w http.ResponseWriter, r *http.Request) { s.patchForeign(w, r, fe) },
		http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { s.deleteForeign(w, r, fe) },
	}
}

// latencyWriter stamps X-Kong-Admin-Latency (ms) and the content type.
type latencyWriter struct {
	http.ResponseWriter
	start time.Time
}

func (lw *latencyWriter) WriteHeader(code int) {
	h := lw.Header()
	if h.Get("X-Kong-Admin-Latency") == "" {
		h.Set("X-Kong-Admin-Latency", strconv.FormatInt(time.Since(lw.start).Milliseconds(), 10))
	}
	lw.ResponseWriter.WriteHeader(code)
}

// headWriter drops the body of a HEAD answer.
type headWriter struct{ http.ResponseWriter }

func (headWriter) Write(p []byte) (int, error) { return len(p), nil }
