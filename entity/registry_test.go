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
	// Kong's core entities come first, in kong/constants.lua's order.
	if want := []string{"services", "routes"}; len(names) < 2 || !slices.Equal(names[:2], want) {
		t.Fatalf("got kinds %v, want them to start with %v", names, want)
	}
	routes := MustKind("routes")
	// kong/db/schema/entities/routes.lua: service names no on_delete, so
	// Kong's default, restrict, applies.
	want := []Reference{{Field: "service", Kind: "services", OnDelete: OnDeleteRestrict}}
	if got := routes.References(); !slices.Equal(got, want) {
		t.Errorf("got routes references %v, want %v", got, want)
	}
	// services.client_certificate refers to certificates, not served yet:
	// a dormant reference, not stored in a column.
	if got := MustKind("services").References(); len(got) != 0 {
		t.Errorf("got services references %v, want none while certificates are not registered", got)
	}
	if got := routes.Unique(); !slices.Equal(got, []string{"name"}) {
		t.Errorf("got routes unique fields %v, want [name]", got)
	}
	if got := Referrers("services"); len(got) == 0 || got[0].Kind != routes {
		t.Errorf("got referrers of services %v, want routes.service first", got)
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
		// certificates must be registered before services.
		{"parent after child", &Kind{Decode: DecodeAs[map[string]any](), Schema: &Schema{Name: "certificates"}},
			"must be registered before services"},
		{"cascading child", child("widgets", "services", OnDeleteCascade), ""},
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
