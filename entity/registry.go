package entity

import (
	"encoding/json"
	"fmt"
	"sync"
)

// OnDelete is Kong's on_delete rule of a foreign field: what deleting the
// referenced entity does to the entities that refer to it.
type OnDelete string

// Kong's on_delete rules (kong/db/schema/init.lua; restrict when a schema
// names none).
const (
	// OnDeleteRestrict refuses to delete a referenced entity (a route's
	// service).
	OnDeleteRestrict OnDelete = "restrict"
	// OnDeleteCascade deletes the referring entities with it (a service's
	// plugins, an upstream's targets).
	OnDeleteCascade OnDelete = "cascade"
)

// Kind is one entity kind, declared once: its schema (fields, defaults,
// checks, endpoint key, unique and foreign fields with their on-delete
// rules), its Go type and where it lives. The store's tables, the Admin
// API's endpoints and nesting, the migration ownership list, the node's
// configuration state and the import order are all derived from the kinds
// registered here; adding a kind takes one Register call, a schema and a
// migration creating its table.
type Kind struct {
	// Schema is the kind's Kong schema; Schema.Name is its table name.
	Schema *Schema
	// Path is the Admin API collection path segment; default Schema.Name
	// (Kong's admin_api_name).
	Path string
	// NestedPath is the segment under a parent's path
	// (/consumers/{c}/key-auth); default Path (Kong's
	// admin_api_nested_name, else admin_api_name).
	NestedPath string
	// Config says the kind is part of the proxy's configuration state: the
	// nodes load it, hash it and rebuild their snapshot when it changes.
	Config bool
	// Decode turns a stored document into the kind's Go type (see DecodeAs).
	Decode func(doc []byte) (any, error)
	// NestedOnly serves the kind only under its parent's path (Kong
	// disables /targets, /targets/{t} and /targets/{t}/upstream).
	NestedOnly bool
	// NoForeignEndpoint lists foreign fields whose /kind/{id}/field
	// endpoint Kong disables (endpoints.disable: /snis/{s}/certificate).
	NoForeignEndpoint []string
}

// Name is the kind's table name, e.g. "services".
func (k *Kind) Name() string { return k.Schema.Name }

// EndpointKey is the field an entity can be named by in a path besides its
// id ("name"); "" if none.
func (k *Kind) EndpointKey() string { return k.Schema.EndpointKey }

// Unique lists the fields whose values are unique across the kind, in
// field order (a consumer's username and custom_id); never "id".
func (k *Kind) Unique() []string {
	var out []string
	for _, f := range k.Schema.Fields {
		if f.Unique && f.Name != "id" {
			out = append(out, f.Name)
		}
	}
	return out
}

// Reference is one foreign field: Field of the referring kind points at
// an entity of kind Kind (a table name).
type Reference struct {
	Field    string   // e.g. "service"
	Kind     string   // the referenced kind's name, e.g. "services"
	OnDelete OnDelete // what deleting the referenced entity does
}

// References lists the kind's foreign fields in field order, those that
// point at a registered kind. A reference to a kind Grapevine does not
// serve yet (a service's client_certificate) is dormant: validated and
// kept in the document, but neither stored in a column nor nested.
func (k *Kind) References() []Reference {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var out []Reference
	for _, ref := range k.allReferences() {
		if ref.Kind == k.Name() || kindLocked(ref.Kind) != nil {
			out = append(out, ref)
		}
	}
	return out
}

// allReferences lists every foreign field, dormant ones included.
func (k *Kind) allReferences() []Reference {
	var out []Reference
	for _, f := range k.Schema.Fields {
		if f.Type != TypeForeign {
			continue
		}
		rule := f.OnDelete
		if rule == "" {
			rule = OnDeleteRestrict
		}
		out = append(out, Reference{Field: f.Name, Kind: f.Reference, OnDelete: rule})
	}
	return out
}

// DecodeAs returns a Decode function for Go type T.
func DecodeAs[T any]() func([]byte) (any, error) {
	return func(doc []byte) (any, error) {
		var v T
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
}

// registry holds the registered kinds. Kinds register at init (coreKinds)
// and, in tests, through RegisterForTest; readers take a copy.
var registry struct {
	mu    sync.RWMutex // guards kinds
	kinds []*Kind      // registration order: every kind after the kinds it references
}

// Register adds a kind. It must come after every kind it references
// (those not registered yet are dormant, see References) and before every
// kind that references it, so the registration order is an import order
// (parents first) and references form no cycle.
func Register(k *Kind) error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if err := checkKindLocked(k); err != nil {
		return fmt.Errorf("register kind: %w", err)
	}
	registry.kinds = append(registry.kinds, k)
	return nil
}

func mustRegister(k *Kind) {
	if err := Register(k); err != nil {
		panic(err)
	}
}

// RegisterForTest registers k and returns a function that removes it
// again. Only for tests that run alone (not t.Parallel), since every
// reader of the registry sees the kind meanwhile.
func RegisterForTest(k *Kind) (remove func(), err error) {
	if err := Register(k); err != nil {
		return nil, err
	}
	return func() {
		registry.mu.Lock()
		defer registry.mu.Unlock()
		for i, x := range registry.kinds {
			if x == k {
				registry.kinds = append(registry.kinds[:i:i], registry.kinds[i+1:]...)
				return
			}
		}
	}, nil
}

// checkKindLocked refuses a kind that the derived parts could not serve.
func checkKindLocked(k *Kind) error {
	if k == nil || k.Schema == nil || k.Schema.Name == "" {
		return fmt.Errorf("a kind needs a schema with a name")
	}
	if k.Decode == nil {
		return fmt.Errorf("kind %s: no Decode", k.Name())
	}
	if k.Path == "" {
		k.Path = k.Schema.Name
	}
	if k.NestedPath == "" {
		k.NestedPath = k.Path
	}
	for _, x := range registry.kinds {
		if x.Name() == k.Name() || x.Path == k.Path {
			return fmt.Errorf("kind %s: registered twice", k.Name())
		}
	}
	if err := checkEndpointKey(k); err != nil {
		return err
	}
	return checkReferencesLocked(k)
}

// checkEndpointKey: the endpoint key is a unique field, or unique within
// the parent named by KeyScope, a foreign field.
func checkEndpointKey(k *Kind) error {
	key := k.EndpointKey()
	if key == "" {
		return nil
	}
	f := k.Schema.Field(key)
	if f == nil {
		return fmt.Errorf("kind %s: endpoint key %q is not a field", k.Name(), key)
	}
	if scope := k.Schema.KeyScope; scope != "" {
		if sf := k.Schema.Field(scope); sf == nil || sf.Type != TypeForeign {
			return fmt.Errorf("kind %s: key scope %q is not a foreign field", k.Name(), scope)
		}
		return nil
	}
	if !f.Unique {
		return fmt.Errorf("kind %s: endpoint key %q is not a unique field", k.Name(), key)
	}
	return nil
}

// checkReferencesLocked keeps registration order an import order: no kind
// registered already may refer to k, since its table would then gain a
// column and its place in the order would be wrong.
func checkReferencesLocked(k *Kind) error {
	for _, ref := range k.allReferences() {
		if ref.OnDelete != OnDeleteRestrict && ref.OnDelete != OnDeleteCascade {
			return fmt.Errorf("kind %s: field %s: on_delete %q", k.Name(), ref.Field, ref.OnDelete)
		}
	}
	for _, x := range registry.kinds {
		for _, ref := range x.allReferences() {
			if ref.Kind == k.Name() {
				return fmt.Errorf("kind %s: %s.%s refers to it, so it must be registered before %s", k.Name(), x.Name(), ref.Field, x.Name())
			}
		}
	}
	return nil
}

func kindLocked(name string) *Kind {
	for _, k := range registry.kinds {
		if k.Name() == name {
			return k
		}
	}
	return nil
}

// Kinds returns every registered kind in import order: each after the
// kinds it references (a full import inserts in this order and deletes in
// the reverse one).
func Kinds() []*Kind {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return append([]*Kind(nil), registry.kinds...)
}

// KindByName returns the kind whose table is name.
func KindByName(name string) (*Kind, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	k := kindLocked(name)
	return k, k != nil
}

// MustKind is KindByName for kinds registered at init.
func MustKind(name string) *Kind {
	k, ok := KindByName(name)
	if !ok {
		panic("entity: no kind " + name)
	}
	return k
}

// Referrer is a kind with a foreign field pointing at another kind.
type Referrer struct {
	Kind *Kind
	Reference
}

// Referrers lists the references to kind name from every registered kind,
// in import order: the nested endpoints (/services/{s}/routes) and what a
// delete restricts or cascades to.
func Referrers(name string) []Referrer {
	var out []Referrer
	for _, k := range Kinds() {
		for _, ref := range k.References() {
			if ref.Kind == name {
				out = append(out, Referrer{Kind: k, Reference: ref})
			}
		}
	}
	return out
}
