package admin

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/entity/declarative"
	"github.com/grapevine-gw/grapevine/store"
)

// Store is what the Admin API reads and writes entities through: the
// PostgreSQL store, or the in-memory configuration of a DB-less node
// (store/memstore), whose InTx refuses every write.
type Store interface {
	Get(ctx context.Context, t store.Table, id string) (store.Row, error)
	GetByKey(ctx context.Context, t store.Table, key string) (store.Row, error)
	GetByScopedKey(ctx context.Context, t store.Table, parentID, key string) (store.Row, error)
	GetByUnique(ctx context.Context, t store.Table, field, value string) (store.Row, error)
	GetByCacheKey(ctx context.Context, t store.Table, key string) (store.Row, error)
	All(ctx context.Context, t store.Table) ([]store.Row, error)
	Referring(ctx context.Context, t store.Table, field, parentID string) ([]store.Row, error)
	List(ctx context.Context, t store.Table, p store.Page) ([]store.Row, string, error)
	Ping(ctx context.Context) error
	InTx(ctx context.Context, fn func(*store.Tx) error) ([]store.Change, error)
}

// DBLess is what a node without a database gives its Admin API.
type DBLess struct {
	// Store answers the entity reads from the configuration served.
	Store Store
	// Config replaces and reports the whole configuration.
	Config Declarative
}

// Declarative is a DB-less node's whole configuration.
type Declarative interface {
	// Replace makes cfg the configuration served, once the proxy serves
	// it; hash is the document's (Kong's md5 of its text).
	Replace(ctx context.Context, cfg *declarative.Config, hash string) error
	// Hash is the hash of the document served; "" for none yet.
	Hash() string
}

// emptyConfigHash is Kong's configuration_hash before any configuration
// is loaded (DECLARATIVE_EMPTY_CONFIG_HASH in kong/constants.lua).
const emptyConfigHash = "00000000000000000000000000000000"

func (s *Server) dbless() bool { return s.cfg.DBLess != nil }

// refuseWrite answers a write of an entity on a DB-less node as Kong's
// "off" strategy does (kong/db/strategies/off/init.lua): 405, code 12,
// "cannot <op> '<table>' entities [by '<key>'] when not using a database";
// by the endpoint key when the path names the entity by it rather than by
// its id (kong/api/endpoints.lua calls the DAO's <op>_by_<key> then).
func (s *Server) refuseWrite(w http.ResponseWriter, r *http.Request, k *kind, op, ref string) {
	msg := fmt.Sprintf("cannot %s '%s' entities", op, k.name)
	if ref != "" && !entity.IsUUID(ref) && k.table.KeyField != "" {
		msg += fmt.Sprintf(" by '%s'", k.table.KeyField)
	}
	s.writeError(w, r, entity.OperationUnsupported(msg+" when not using a database"))
}

// handleConfig is /config (kong/api/routes/config.lua): with a database,
// 400 on every method; without one, GET exports the configuration served
// and POST replaces it.
func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	switch {
	case !s.dbless():
		writeMessage(w, http.StatusBadRequest, dbModeConfigMessage)
	case r.Method == http.MethodGet:
		s.exportConfig(w, r)
	default:
		s.postConfig(w, r)
	}
}

// exportConfig is GET /config on a DB-less node: {"config": the
// configuration served, as a declarative YAML document}.
func (s *Server) exportConfig(w http.ResponseWriter, r *http.Request) {
	rows := map[string][]store.Row{}
	for _, k := range s.kinds.order {
		list, err := s.st.All(r.Context(), k.table)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rows[k.table.Name] = list
	}
	out, err := declarative.Export(store.ExportDocs(rows))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"config": string(out)})
}

// configPost is what a POST /config asks.
type configPost struct {
	doc           []byte
	hash          string // "" when the document came parsed (a JSON body): check_hash cannot skip it
	checkHash     bool
	flattenErrors bool
}

// postConfig replaces a DB-less node's configuration: 201 with the
// entities loaded by kind and id, 304 with ?check_hash=1 when the document
// is the one served, 400 with Kong's declarative errors when it is wrong.
func (s *Server) postConfig(w http.ResponseWriter, r *http.Request) {
	req, err := readConfigPost(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.doc) == 0 {
		writeMessage(w, http.StatusBadRequest, "expected a declarative configuration")
		return
	}
	if req.checkHash && req.hash != "" && req.hash == s.cfg.DBLess.Config.Hash() {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	cfg, err := declarative.Parse(req.doc)
	var de *declarative.Error
	if errors.As(err, &de) {
		writeJSON(w, http.StatusBadRequest, declarativeError(de, req.flattenErrors))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hash := req.hash
	if hash == "" {
		hash = md5Hex(req.doc)
	}
	if err := s.cfg.DBLess.Config.Replace(r.Context(), cfg, hash); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, loadedEntities(cfg))
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// readConfigPost takes the document as Kong's hydrate_config_from_request
// does: a JSON body holding _format_version is the document itself; else
// the "config" argument (a JSON body's key, a form or multipart field);
// else the raw body (YAML or JSON of another content type). check_hash
// and flatten_errors come from the query or the body's arguments.
func readConfigPost(r *http.Request) (configPost, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return configPost{}, fmt.Errorf("read body: %w", err)
	}
	args := r.URL.Query()
	var req configPost
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		var top map[string]any
		if json.Unmarshal(body, &top) != nil {
			return configPost{}, entity.ErrMalformedJSON
		}
		for _, name := range []string{"check_hash", "flatten_errors"} {
			if v, ok := top[name]; ok && !args.Has(name) {
				args.Set(name, fmt.Sprint(v))
			}
		}
		if _, ok := top["_format_version"]; ok {
			req.doc = body
		} else if text, ok := top["config"].(string); ok {
			req.doc, req.hash = []byte(text), md5Hex([]byte(text))
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		if err := r.ParseMultipartForm(32 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return configPost{}, fmt.Errorf("%v: %w", err, entity.ErrMalformedForm)
		}
		mergeArgs(args, r.PostForm)
		if text := r.PostForm.Get("config"); text != "" {
			req.doc, req.hash = []byte(text), md5Hex([]byte(text))
		}
	default:
		if len(body) > 0 {
			req.doc, req.hash = body, md5Hex(body)
		}
	}
	// check_hash is compared as text with "1"; flatten_errors is Kong's truthy().
	req.checkHash = args.Get("check_hash") == "1"
	switch strings.ToLower(args.Get("flatten_errors")) {
	case "true", "1", "on", "yes":
		req.flattenErrors = true
	}
	return req, nil
}

// mergeArgs adds the body's arguments the query does not have.
func mergeArgs(args, form url.Values) {
	for name, values := range form {
		if !args.Has(name) {
			args[name] = values
		}
	}
}

// loadedEntities is POST /config's 201 body: every entity loaded, by kind
// and id, as Kong answers with the entities it loaded.
func loadedEntities(cfg *declarative.Config) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, kd := range cfg.Kinds {
		byID := make(map[string]any, len(kd.Docs))
		for _, doc := range kd.Docs {
			if id, ok := doc["id"].(string); ok {
				byID[id] = doc
			}
		}
		out[kd.Kind.Name()] = byID
	}
	return out
}

// declarativeError is Kong's code 14 body for a refused document
// (kong/db/errors.lua declarative_config): "fields" holds the errors
// nested as the document is, and with flatten_errors
// "flattened_errors" names each wrong entity (declarative_config_flattened).
func declarativeError(de *declarative.Error, flatten bool) map[string]any {
	fields := map[string]any{}
	if de.Message != "" {
		fields["error"] = de.Message
	}
	flat := []any{}
	for _, e := range de.Entities {
		nestErrors(fields, e)
		flat = append(flat, flattenedEntity(e))
	}
	out := map[string]any{
		"code":    14,
		"name":    "invalid declarative configuration",
		"message": de.Error(),
		"fields":  fields,
	}
	if flatten {
		out["flattened_errors"] = flat
	}
	return out
}

// nestErrors puts one entity's errors into fields at its place in the
// document: "services[2].routes[1]" becomes fields.services["2"].routes["1"].
func nestErrors(fields map[string]any, e declarative.EntityError) {
	at := fields
	for _, seg := range strings.Split(e.Path, ".") {
		name, index, _ := strings.Cut(strings.TrimSuffix(seg, "]"), "[")
		at = child(child(at, name), index)
	}
	for _, fe := range e.Errors {
		if fe.Field == "" {
			list, _ := at["@entity"].([]any)
			at["@entity"] = append(list, fe.Message)
			continue
		}
		at[fe.Field] = fe.Message
	}
}

func child(m map[string]any, key string) map[string]any {
	if key == "" {
		return m
	}
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// flattenedEntity is one entry of Kong's flattened_errors: the entity's
// kind (singular), name, id and tags as the document gives them (left out
// when not well-formed), the entity itself and its errors.
func flattenedEntity(e declarative.EntityError) map[string]any {
	out := map[string]any{
		"entity_type": strings.TrimSuffix(e.Kind, "s"),
		"entity":      e.Entity,
		"errors":      e.Errors,
	}
	if name, ok := e.Entity["name"].(string); ok && name != "" {
		out["entity_name"] = name
	}
	if id, ok := e.Entity["id"].(string); ok && entity.IsUUID(id) {
		out["entity_id"] = id
	}
	if tags, ok := e.Entity["tags"].([]any); ok && allStrings(tags) {
		out["entity_tags"] = tags
	}
	return out
}

func allStrings(list []any) bool {
	for _, v := range list {
		if _, ok := v.(string); !ok {
			return false
		}
	}
	return true
}

// validThenRefuse answers a create on a DB-less node: Kong's DAO validates
// the entity first (400 for a bad one), and only its "off" strategy
// refuses the write.
func (s *Server) validThenRefuse(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, in map[string]any, op, ref string) {
	if _, _, err := s.validRow(ctx, k, in); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.refuseWrite(w, r, k, op, ref)
}

// refusePut answers a PUT on a DB-less node: validated as the upsert
// would be, then refused.
func (s *Server) refusePut(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting, body map[string]any) {
	in := make(map[string]any, len(body)+3)
	for key, v := range body {
		in[key] = v
	}
	if err := s.prepareUpsert(ctx, k, ref, n, in); err != nil {
		s.writeError(w, r, err)
		return
	}
	stampTimes(k, in)
	entity.FillAutoStrings(k.schema, in)
	s.validThenRefuse(ctx, w, r, k, in, "create or update", ref)
}

// addDeclarativeSource is /status on a DB-less node, as Kong's
// (kong/api/routes/health.lua): no "database" entry, and the hash of the
// document served (zeros before any); configuration_source is Grapevine's.
func addDeclarativeSource(body map[string]any, hash string) {
	delete(body, "database")
	if hash == "" {
		hash = emptyConfigHash
	}
	body["configuration_hash"] = hash
	body["configuration_source"] = "declarative_config"
}
