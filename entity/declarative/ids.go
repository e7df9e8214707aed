package declarative

import (
	"crypto/sha1"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/grapevine-gw/grapevine/entity"
)

// An entity the file gives without an id gets one derived from what the
// file says, never a random one, so every node (and every reload) that
// reads the same file gives it the same id and serves the same config
// hash. Where Kong 3.9 derives one (generate_ids in
// kong/db/schema/others/declarative_config.lua) the id is Kong's: a UUIDv5
// in the namespace v5(entitiesNamespace, kind name) of the entity's
// cache_key ("<kind>:*:<field values…>") or else of its endpoint key's
// value. Where Kong falls back to a random id (no such key, an auto field
// in the cache_key, a parent without an id yet), Grapevine derives one
// from the entity's content in a namespace of its own.

// entitiesNamespace is Kong's namespace for declarative ids
// (uuid_generators._entities in declarative_config.lua).
var entitiesNamespace = uuid.MustParse("fd02801f-0957-4a15-a55a-c8d9606f30b5")

// kongWorkspace is what Kong's ws_id_for puts in a key for an entity of a
// file, which names no workspace.
const kongWorkspace = "*"

// idDeriver gives ids to one document's entities.
type idDeriver struct {
	kinds map[string]uuid.UUID // Kong's namespace per kind
	own   map[string]uuid.UUID // Grapevine's fallback namespace per kind
	seen  map[string]int       // fallback keys used so far, for twins
	kong  map[string]bool      // Kong's ids handed out so far (ids of every kind: namespaces differ)
}

func newIDDeriver() *idDeriver {
	return &idDeriver{kinds: map[string]uuid.UUID{}, own: map[string]uuid.UUID{},
		seen: map[string]int{}, kong: map[string]bool{}}
}

// derive is the id of an entity given without one: given is the record as
// the file has it (without nested children); when nested, parentField is
// the field naming its parent, parentID the parent's id and parentKong
// whether Kong knows that id when it derives the child's. kong says
// whether Kong derives the same id.
func (d *idDeriver) derive(k *entity.Kind, given map[string]any, parentField, parentID string, parentKong bool) (id string, kong bool) {
	name := k.Name()
	kongParent := parentID
	if !parentKong {
		kongParent = ""
	}
	if key, ok := kongIDKey(k.Schema, given, parentField, kongParent); ok {
		ns, found := d.kinds[name]
		if !found {
			ns = uuid.NewSHA1(entitiesNamespace, []byte(name))
			d.kinds[name] = ns
		}
		id := v5(ns, key).String()
		// Kong's key can repeat where the file is still valid (two
		// plugins whose references are written as {id = …} records,
		// which Kong's key leaves out); Kong then refuses the file with
		// a duplicate primary key. Grapevine takes the file, giving the
		// second one an id of its own. A repeated name or target is
		// still refused by its own uniqueness check.
		if !d.kong[id] {
			d.kong[id] = true
			return id, true
		}
	}
	ns, found := d.own[name]
	if !found {
		ns = uuid.NewSHA1(entitiesNamespace, []byte("grapevine:"+name))
		d.own[name] = ns
	}
	key := parentField + ":" + parentID + ":" + canonical(given)
	d.seen[key]++
	return v5(ns, key+"#"+strconv.Itoa(d.seen[key])).String(), false
}

// v5 is uuid.NewSHA1(ns, name) (RFC 4122 version 5, as Kong's
// resty.jit-uuid factory_v5) with one allocation: a parse derives one
// per entity.
func v5(ns uuid.UUID, name string) uuid.UUID {
	buf := make([]byte, 0, len(ns)+len(name))
	buf = append(append(buf, ns[:]...), name...)
	sum := sha1.Sum(buf)
	var id uuid.UUID
	copy(id[:], sum[:])
	id[6] = (id[6] & 0x0f) | 0x50 // version 5
	id[8] = (id[8] & 0x3f) | 0x80 // RFC 4122 variant
	return id
}

// canonical is a record's JSON with its keys in order.
func canonical(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

// kongIDKey is Kong's get_key_for_uuid_gen: the cache_key when the kind
// has one (build_cache_key), else the endpoint key's value, composed with
// the parent for a key unique only under its parent.
func kongIDKey(s *entity.Schema, given map[string]any, parentField, parentID string) (string, bool) {
	if fields := s.KongCacheKeyFields(); len(fields) > 0 {
		return kongCacheKey(s, fields, given, parentField, parentID)
	}
	if s.EndpointKey == "" {
		return "", false
	}
	key, ok := given[s.EndpointKey].(string)
	if !ok {
		return "", false
	}
	if f := s.Field(s.EndpointKey); f != nil && f.Unique {
		return key, true
	}
	// Unique only under its parent: Kong adds every cascading parent's id
	// and the workspace.
	for _, f := range s.Fields {
		if f.Type != entity.TypeForeign || f.OnDelete != entity.OnDeleteCascade {
			continue
		}
		ref, _ := given[f.Name].(string)
		if parentField != "" {
			ref = parentID // nested: Kong takes the parent's id
		}
		if ref == "" {
			return "", false // Kong fails on the missing value; no id of Kong's
		}
		key += ":" + ref
	}
	return key + ":" + kongWorkspace, true
}

// kongCacheKey is Kong's build_cache_key: the kind and workspace, then
// each field's string value; the parent's id for the field naming the
// parent; "" for an optional field not given. An auto field, a required
// one not given or a parent without an id leave Kong without a key.
// Values that are not strings (a reference as {id = …}, null) add
// nothing, as in Kong.
func kongCacheKey(s *entity.Schema, fields []string, given map[string]any, parentField, parentID string) (string, bool) {
	parts := []string{s.Name, kongWorkspace}
	for _, name := range fields {
		f := s.Field(name)
		if f == nil || f.Auto {
			return "", false
		}
		v, present := given[name]
		switch {
		case present:
			if str, ok := v.(string); ok {
				parts = append(parts, str)
			}
		case name == parentField && parentField != "":
			if parentID == "" {
				return "", false
			}
			parts = append(parts, parentID)
		case f.Required:
			return "", false
		default:
			parts = append(parts, "")
		}
	}
	return strings.Join(parts, ":"), true
}
