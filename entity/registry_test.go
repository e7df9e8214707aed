package entity

import (
	"slices"
	"strings"
	"testing"
)

func TestCoreKinds(t *testing.T) {
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name())
	}
	// kong/constants.lua CORE_ENTITIES: certificates before services; the
	// plugins' own kinds after the core ones.
	want := []string{"certificates", "services", "routes", "upstreams", "targets", "snis", "ca_certificates", "key_sets", "keys",
		"consumers", "plugins", "keyauth_credentials", "basicauth_credentials", "hmacauth_credentials", "jwt_secrets", "acls", "oauth2_credentials"}
	if !slices.Equal(names, want) {
		t.Fatalf("got kinds %v, want %v", names, want)
	}
	routes := MustKind("routes")
	// kong/db/schema/entities/routes.lua: service names no on_delete, so
	// Kong's default, restrict, applies.
	wantRefs := []Reference{{Field: "service", Kind: "services", OnDelete: OnDeleteRestrict}}
	if got := routes.References(); !slices.Equal(got, wantRefs) {
		t.Errorf("got routes references %v, want %v", got, wantRefs)
	}
	// services.lua: client_certificate refers to certificates, restrict.
	wantRefs = []Reference{{Field: "client_certificate", Kind: "certificates", OnDelete: OnDeleteRestrict}}
	if got := MustKind("services").References(); !slices.Equal(got, wantRefs) {
		t.Errorf("got services references %v, want %v", got, wantRefs)
	}
	// keys.lua: a key goes with its key set.
	wantRefs = []Reference{{Field: "set", Kind: "key_sets", OnDelete: OnDeleteCascade}}
	if got := MustKind("keys").References(); !slices.Equal(got, wantRefs) {
		t.Errorf("got keys references %v, want %v", got, wantRefs)
	}
	if got := MustKind("key_sets").Path; got != "key-sets" {
		t.Errorf("got key_sets path %q, want key-sets (admin_api_name)", got)
	}
	if got := routes.Unique(); !slices.Equal(got, []string{"name"}) {
		t.Errorf("got routes unique fields %v, want [name]", got)
	}
	if got := MustKind("ca_certificates").Unique(); !slices.Equal(got, []string{"cert_digest"}) {
		t.Errorf("got ca_certificates unique fields %v, want [cert_digest]", got)
	}
	if got := Referrers("services"); len(got) == 0 || got[0].Kind != routes {
		t.Errorf("got referrers of services %v, want routes.service first", got)
	}
	// kong/db/schema/entities/targets.lua: a target goes with its upstream.
	wantTarget := []Reference{{Field: "upstream", Kind: "upstreams", OnDelete: OnDeleteCascade}}
	if got := MustKind("targets").References(); !slices.Equal(got, wantTarget) {
		t.Errorf("got targets references %v, want %v", got, wantTarget)
	}
}

func TestRegisterKeepsImportOrder(t *testing.T) {
	before := len(Kinds())
	child := func(name, ref string, rule OnDelete) *Kind {
		return &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: name, Fields: []Field{
			uuidField("id"),
			{Name: "parent", Type: TypeForeign, Reference: ref, OnDelete: rule},
		}}}
	}
	tests := []struct {
		name string
		kind *Kind
		want string // error substring, "" = registers
	}{
		{"twice", &Kind{Schema: Services, Decode: DecodeAs[Service]()}, "registered twice"},
		{"no decoder", &Kind{Schema: &Schema{Name: "x"}}, "no Decode"},
		{"bad on_delete", child("x", "services", "null"), `on_delete "null"`},
		{"endpoint key not unique", &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "x", EndpointKey: "tag",
			Fields: []Field{{Name: "tag", Type: TypeString}}}}, "not a unique field"},
		// services.client_certificate refers to certificates, so
		// they cannot be registered (again) after services.
		{"parent after child", &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "certificates"}, Path: "certs"},
			"registered twice"},
		{"cascading child", child("widgets", "services", OnDeleteCascade), ""},
		{"key scope not foreign", &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "x", EndpointKey: "tag", KeyScope: "tag",
			Fields: []Field{{Name: "tag", Type: TypeString}}}}, "not a foreign field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			remove, err := RegisterForTest(tc.kind)
			if err == nil {
				defer remove()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if n := len(Kinds()); n != before {
		t.Fatalf("got %d kinds after the removals, want %d", n, before)
	}
}

// TestRegisterParentAfterChild: a kind that a registered kind refers to
// cannot come later, or the registration order would stop being an
// import order.
func TestRegisterParentAfterChild(t *testing.T) {
	child := &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "gadget_users", Fields: []Field{
		uuidField("id"), {Name: "gadget", Type: TypeForeign, Reference: "gadgets"},
	}}}
	remove, err := RegisterForTest(child)
	if err != nil {
		t.Fatalf("register child: %v", err)
	}
	defer remove()
	_, err = RegisterForTest(&Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "gadgets"}})
	if err == nil || !strings.Contains(err.Error(), "must be registered before gadget_users") {
		t.Fatalf("got error %v, want one containing %q", err, "must be registered before gadget_users")
	}
}
