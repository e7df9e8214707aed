package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/store"
)

// lookup finds an entity by id (a UUID) or by its endpoint key. A key the
// key field refuses (a space, a NUL byte, invalid utf-8) is Kong's code 10,
// 400, for every method and also as the parent of a nested path.
func (s *Server) lookup(ctx context.Context, k *kind, ref string) (store.Row, error) {
	if entity.IsUUID(ref) {
		return s.st.Get(ctx, k.table, ref)
	}
	if k.table.KeyField == "" {
		return store.Row{}, store.ErrNotFound
	}
	if kerr := k.schema.CheckEndpointKey(ref); kerr != nil {
		return store.Row{}, kerr
	}
	return s.st.GetByKey(ctx, k.table, ref)
}

// lookupChild finds an entity under a nested path: by id, by endpoint
// key, or, for a kind without one, by the field that names it within its
// parent (see nestedKeyField).
func (s *Server) lookupChild(ctx context.Context, k *kind, ref string, n *nesting, parentID string) (store.Row, error) {
	field := nestedKeyField(k, n)
	if field == "" || entity.IsUUID(ref) {
		return s.lookup(ctx, k, ref)
	}
	key := entity.CacheKeyOf(k.schema, map[string]any{n.field: map[string]any{"id": parentID}, field: ref})
	return s.st.GetByCacheKey(ctx, k.table, key)
}

// nestedKeyField is the field naming a child within its parent when the
// child kind has no endpoint key: the other field of a cache key made of
// the parent and one more (an acl's group within its consumer, as
// kong/plugins/acl/api.lua resolves /consumers/{c}/acls/{group}); "" if
// none.
func nestedKeyField(k *kind, n *nesting) string {
	keys := k.schema.CacheKey
	if n == nil || k.table.KeyField != "" || !k.table.CacheKey || len(keys) != 2 {
		return ""
	}
	switch n.field {
	case keys[0]:
		return keys[1]
	case keys[1]:
		return keys[0]
	}
	return ""
}

// lookupParent resolves the parent of a nested path; nil nesting gives "".
func (s *Server) lookupParent(ctx context.Context, n *nesting) (string, error) {
	if n == nil {
		return "", nil
	}
	row, err := s.lookup(ctx, n.parent, n.parentRef)
	if err != nil {
		return "", fmt.Errorf("parent %s %q: %w", n.parent.name, n.parentRef, err)
	}
	return row.ID, nil
}

// lookupNested finds an entity and, under a nested path, checks that it
// belongs to the parent (otherwise it is "Not found").
func (s *Server) lookupNested(ctx context.Context, k *kind, ref string, n *nesting) (store.Row, error) {
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		return store.Row{}, err
	}
	var row store.Row
	if n != nil && k.table.KeyScope == n.field && !entity.IsUUID(ref) {
		// A key unique only within its parent names an entity there.
		row, err = s.st.GetByScopedKey(ctx, k.table, parentID, ref)
	} else {
		row, err = s.lookupChild(ctx, k, ref, n, parentID)
	}
	if err != nil {
		return store.Row{}, fmt.Errorf("%s %q: %w", k.name, ref, err)
	}
	if n != nil && row.Foreign[n.field] != parentID {
		return store.Row{}, errNotFound
	}
	return row, nil
}

func (s *Server) getEntity(w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.lookupNested(ctx, k, ref, n)
	if err == nil {
		row, err = s.renderRow(ctx, k, row)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, row.Doc)
}

func (s *Server) createEntity(w http.ResponseWriter, r *http.Request, k *kind, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	in, err := readBody(r, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if n != nil {
		in[n.field] = map[string]any{"id": parentID}
	}
	setIfAbsent(in, "id", uuid.NewString())
	stampTimes(k, in)
	entity.FillAutoStrings(k.schema, in)
	if s.dbless() {
		s.validThenRefuse(ctx, w, r, k, in, "create", "")
		return
	}
	s.writeDoc(ctx, w, r, k, in, http.StatusCreated, (*store.Tx).Insert)
}

// maxPutAttempts bounds putEntity's retries after losing a creation race.
const maxPutAttempts = 3

func (s *Server) putEntity(w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	body, err := readBody(r, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.dbless() {
		s.refusePut(ctx, w, r, k, ref, n, body)
		return
	}
	for attempt := 1; ; attempt++ {
		row, err := s.upsertOnce(ctx, k, ref, n, body)
		if err != nil && attempt < maxPutAttempts && lostKeyRace(err, k, ref) {
			// Another request created ref since we looked it up: this PUT
			// now replaces that row, as it would have a moment later.
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, row.Doc)
		return
	}
}

// upsertOnce looks ref up and writes body over it (or creates it).
func (s *Server) upsertOnce(ctx context.Context, k *kind, ref string, n *nesting, body map[string]any) (store.Row, error) {
	in := make(map[string]any, len(body)+3)
	for key, v := range body {
		in[key] = v
	}
	if err := s.prepareUpsert(ctx, k, ref, n, in); err != nil {
		return store.Row{}, err
	}
	stampTimes(k, in)
	entity.FillAutoStrings(k.schema, in)
	return s.save(ctx, k, in, (*store.Tx).Upsert)
}

// lostKeyRace tells a PUT by endpoint key that created a new row and met
// the unique key of a row committed meanwhile under the same key.
func lostKeyRace(err error, k *kind, ref string) bool {
	var ue *store.UniqueError
	return !entity.IsUUID(ref) && errors.As(err, &ue) && ue.Field == k.table.KeyField && ue.Value == ref
}

// prepareUpsert sets the id (and endpoint key) a PUT writes: the path's
// UUID, or the existing entity's id for a key, or a new id.
func (s *Server) prepareUpsert(ctx context.Context, k *kind, ref string, n *nesting, in map[string]any) error {
	parentID, err := s.lookupParent(ctx, n)
	if err != nil {
		return err
	}
	existing, err := s.lookupChild(ctx, k, ref, n, parentID)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %q: %w", k.name, ref, err)
	}
	if n != nil {
		// A PUT replaces the whole child, its parent included: Kong's
		// put_entity_endpoint (kong/api/endpoints.lua) sets the path's
		// parent and upserts without checking the old one, so a child of
		// another parent moves here.
		in[n.field] = map[string]any{"id": parentID}
	}
	nestedKey := nestedKeyField(k, n)
	switch {
	case entity.IsUUID(ref):
		in["id"] = ref
	case nestedKey != "":
		// PUT /consumers/{c}/acls/{group}: that group's acl, or a new one
		// in that group unless the body names another.
		if found {
			in["id"] = existing.ID
		}
		setIfAbsent(in, "id", uuid.NewString())
		setIfAbsent(in, nestedKey, ref)
	case k.table.KeyField == "":
		return errNotFound
	case found:
		in["id"], in[k.table.KeyField] = existing.ID, ref
	default:
		in[k.table.KeyField] = ref
		setIfAbsent(in, "id", uuid.NewString())
	}
	return nil
}

func (s *Server) patchEntity(w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	existing, err := s.lookupNested(ctx, k, ref, n)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.dbless() {
		if _, err := readBody(r, k); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.refuseWrite(w, r, k, "update", ref)
		return
	}
	// Under a nested path the row must still belong to the parent found
	// above when the transaction locks it.
	stillHere := func(current store.Row) error {
		if n != nil && current.Foreign[n.field] != existing.Foreign[n.field] {
			return errNotFound
		}
		return nil
	}
	s.patchRow(ctx, w, r, k, existing.ID, stillHere)
}

// patchRow deep-merges the body into the entity as stored when the write
// commits, and validates the result as a whole (Kong's PATCH). The merge
// runs inside the store's locked read-modify-write, so concurrent PATCHes
// of one entity each apply to the result of the one before.
func (s *Server) patchRow(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, id string, check func(store.Row) error) {
	in, err := readBody(r, k)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.resolveForeign(ctx, k, in); err != nil {
		s.writeError(w, r, err)
		return
	}
	var row store.Row
	changes, err := s.st.InTx(ctx, func(x *store.Tx) error {
		var transient map[string]any
		_, written, err := x.Modify(ctx, k.table, id, func(current store.Row) (store.Row, error) {
			if err := check(current); err != nil {
				return store.Row{}, err
			}
			var merged store.Row
			merged, transient, err = mergeRow(k, current, in)
			return merged, err
		})
		if err != nil {
			return err
		}
		row = written
		// A PATCH leaves alone the transient fields it does not send.
		for name := range transient {
			if _, sent := in[name]; !sent {
				delete(transient, name)
			}
		}
		return s.afterWrite(ctx, x, k, row, transient)
	})
	s.answerWrite(ctx, w, r, k, changes, row, http.StatusOK, err)
}

// afterWrite runs k's afterWrite hook, if any, in the write's transaction.
func (s *Server) afterWrite(ctx context.Context, x *store.Tx, k *kind, row store.Row, transient map[string]any) error {
	if h := hooksOf(k); h.afterWrite != nil {
		return h.afterWrite(ctx, s, x, row, transient)
	}
	return nil
}

// answerWrite makes a committed write's changes live here and answers with
// the entity as rendered, or with the write's error.
func (s *Server) answerWrite(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, changes []store.Change, row store.Row, status int, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, c := range changes {
		s.apply(ctx, c)
	}
	row, err = s.renderRow(ctx, k, withTTL(k, row))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, row.Doc)
}

// mergeRow is the new version of current once patch is merged in, and
// the transient fields of the merged entity.
func mergeRow(k *kind, current store.Row, patch map[string]any) (store.Row, map[string]any, error) {
	base, err := decodeDoc(current.Doc)
	if err != nil {
		return store.Row{}, nil, fmt.Errorf("stored %s %s: %w", k.name, current.ID, err)
	}
	delete(base, "ttl") // the seconds left as read, not a field
	merged := k.schema.Merge(base, patch)
	merged["id"] = current.ID
	if k.schema.Field("updated_at") != nil {
		merged["updated_at"] = timestamp(k, time.Now())
	}
	doc, verr := k.schema.Validate(merged)
	if verr != nil {
		return store.Row{}, nil, verr
	}
	if k.schema.OnWrite != nil {
		k.schema.OnWrite(patch, doc)
	}
	transient := splitTransient(k, doc)
	row, err := toRow(k, doc)
	row.Expires = patchedExpiry(k, current, doc)
	return row, transient, err
}

// patchedExpiry is when a patched entity expires: as Kong's update, the
// ttl a PATCH gives counts from now (credentials have no updated_at), and
// a PATCH without one keeps the entity's expiry.
func patchedExpiry(k *kind, current store.Row, doc map[string]any) *time.Time {
	ttl, given := doc["ttl"].(int64)
	if !k.table.TTL || !given {
		return current.Expires
	}
	return store.ExpiresAfter(time.Now(), ttl)
}

// withTTL renders a written row of a TTL kind as a read would, with
// Kong's "ttl": the seconds left, or null.
func withTTL(k *kind, row store.Row) store.Row {
	if k.table.TTL {
		row.Doc = store.WithTTL(row.Doc, row.Expires, time.Now())
	}
	return row
}

// splitTransient takes the transient fields out of a validated document
// (they are not stored) and returns them.
func splitTransient(k *kind, doc map[string]any) map[string]any {
	var out map[string]any
	for _, f := range k.schema.Fields {
		if !f.Transient {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[f.Name] = doc[f.Name]
		delete(doc, f.Name)
	}
	return out
}

// deleteEntity: deleting what is not there is done (204) at the top
// level, but under a nested path Kong answers 404 when the parent, the
// child or the link between them is missing (kong/api/endpoints.lua
// delete_entity_endpoint).
func (s *Server) deleteEntity(w http.ResponseWriter, r *http.Request, k *kind, ref string, n *nesting) {
	ctx, cancel := s.dbContext(r)
	defer cancel()
	row, err := s.lookupNested(ctx, k, ref, n)
	if n == nil && errors.Is(err, store.ErrNotFound) {
		writeNoContent(w)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.dbless() {
		s.refuseWrite(w, r, k, "remove", ref)
		return
	}
	s.deleteRow(ctx, w, r, k, row.ID)
}

// deleteRow deletes the entity and what cascades with it, and makes every
// one of those changes live here.
func (s *Server) deleteRow(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, id string) {
	changes, err := s.st.InTx(ctx, func(x *store.Tx) error {
		if h := hooksOf(k); h.beforeDelete != nil {
			if err := h.beforeDelete(ctx, s, x, id); err != nil {
				return err
			}
		}
		_, err := x.Delete(ctx, k.table, id)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, c := range changes {
		s.apply(ctx, c)
	}
	writeNoContent(w)
}

// writeFunc is one of the transaction's Insert, Upsert or Update.
type writeFunc func(x *store.Tx, ctx context.Context, t store.Table, r store.Row) (store.Change, error)

// writeDoc saves in and answers with the stored entity.
func (s *Server) writeDoc(ctx context.Context, w http.ResponseWriter, r *http.Request, k *kind, in map[string]any, status int, write writeFunc) {
	row, err := s.save(ctx, k, in, write)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, row.Doc)
}

// save resolves foreign keys, validates, writes (with what the kind's
// afterWrite hook adds, in one transaction) and applies the changes
// locally; it returns the stored row as rendered.
func (s *Server) save(ctx context.Context, k *kind, in map[string]any, write writeFunc) (store.Row, error) {
	row, transient, err := s.validRow(ctx, k, in)
	if err != nil {
		return store.Row{}, err
	}
	changes, err := s.st.InTx(ctx, func(x *store.Tx) error {
		if _, err := write(x, ctx, k.table, row); err != nil {
			return err
		}
		return s.afterWrite(ctx, x, k, row, transient)
	})
	if err != nil {
		return store.Row{}, err
	}
	for _, c := range changes {
		s.apply(ctx, c)
	}
	return s.renderRow(ctx, k, withTTL(k, row))
}

// validRow resolves foreign keys and validates in, giving the row to write
// and the transient fields taken out of it (they are not stored).
func (s *Server) validRow(ctx context.Context, k *kind, in map[string]any) (store.Row, map[string]any, error) {
	if err := s.resolveForeign(ctx, k, in); err != nil {
		return store.Row{}, nil, err
	}
	doc, verr := k.schema.Validate(in)
	if verr != nil {
		return store.Row{}, nil, verr
	}
	if k.schema.OnWrite != nil {
		k.schema.OnWrite(in, doc)
	}
	transient := splitTransient(k, doc)
	row, err := toRow(k, doc)
	return row, transient, err
}

// apply makes a committed change live on this node. The write is already
// committed, so a failure is logged, not answered: polling will catch up.
func (s *Server) apply(ctx context.Context, c store.Change) {
	if s.applier == nil || c.Op == "" {
		return
	}
	if err := s.applier.Apply(ctx, c); err != nil {
		s.log.Warn().Err(err).Str("table", c.Table).Str("id", c.ID).Int64("event_id", c.EventID).Msg("apply change locally")
	}
}

// resolveForeign turns references without an id, such as {"name": "x"},
// into {"id": …}, as Kong's resolve_foreign does (kong/db/dao/init.lua):
// by the parent's endpoint key or another unique field, code 13 when no
// entity has that value.
func (s *Server) resolveForeign(ctx context.Context, k *kind, in map[string]any) error {
	for _, f := range k.table.Foreign {
		ref, ok := in[f.Field].(map[string]any)
		parent, known := s.kinds.byTable[f.Table]
		if !ok || !known || ref["id"] != nil {
			continue
		}
		for _, field := range parent.uniqueFields() {
			value, ok := ref[field].(string)
			if !ok {
				continue
			}
			row, err := s.st.GetByUnique(ctx, parent.table, field, value)
			if errors.Is(err, store.ErrNotFound) {
				return entity.ForeignKeyUnresolved(f.Field, field, value, f.Table)
			}
			if err != nil {
				return fmt.Errorf("resolve %s %q: %w", f.Field, value, err)
			}
			in[f.Field] = map[string]any{"id": row.ID}
			break
		}
	}
	return nil
}

// readBody reads the whole body, which serveHTTP has capped at
// MaxBodySize: a longer one fails with *http.MaxBytesError (413), never
// silently cut short.
func readBody(r *http.Request, k *kind) (map[string]any, error) {
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %v: %w", err, entity.ErrMalformedForm)
	}
	in, err := entity.DecodeBody(r.Header.Get("Content-Type"), body, k.schema)
	if err != nil {
		return nil, err
	}
	k.schema.RewriteInput(in)
	return in, nil
}

func decodeDoc(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	return doc, nil
}

func setIfAbsent(in map[string]any, key string, v any) {
	if _, ok := in[key]; !ok {
		in[key] = v
	}
}

// stampTimes sets created_at unless the client gave one, and updated_at,
// where k has them (credentials have no updated_at).
func stampTimes(k *kind, in map[string]any) {
	now := timestamp(k, time.Now())
	if in["created_at"] == nil && k.schema.Field("created_at") != nil {
		in["created_at"] = now
	}
	if k.schema.Field("updated_at") != nil {
		in["updated_at"] = now
	}
}

// timestamp is t as k's timestamps hold it: whole seconds, or seconds
// with millisecond precision where the field is a number (Kong's
// auto_timestamp_ms, a target's).
func timestamp(k *kind, t time.Time) any {
	if f := k.schema.Field("created_at"); f != nil && f.Type == entity.TypeNumber {
		return float64(t.UnixMilli()) / 1000
	}
	return t.Unix()
}

// toRow extracts the store's indexed columns from a validated entity.
func toRow(k *kind, doc map[string]any) (store.Row, error) {
	return store.RowOf(k.ek, doc)
}
