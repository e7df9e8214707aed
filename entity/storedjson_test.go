package entity

import (
	"encoding/json"
	"reflect"
	"testing"
)

// storedReaders are the kinds with a reader of their own, each beside
// encoding/json's decoding of its type.
var storedReaders = []struct {
	kind string
	read func([]byte) (any, bool)
	std  func([]byte) (any, error)
}{
	{"services", asAny(readService), DecodeAs[Service]()},
	{"routes", asAny(readRoute), DecodeAs[Route]()},
	{"plugins", asAny(readPlugin), DecodeAs[Plugin]()},
	{"consumers", asAny(readConsumer), DecodeAs[Consumer]()},
	{"keyauth_credentials", asAny(readKeyAuthCredential), DecodeAs[KeyAuthCredential]()},
}

func asAny[T any](read func([]byte) (T, bool)) func([]byte) (any, bool) {
	return func(doc []byte) (any, bool) { return read(doc) }
}

// Documents as PostgreSQL renders jsonb (", " and ": ", keys by length):
// what a full reload reads. Each must be taken by its kind's reader.
var storedDocs = map[string][]string{
	"services": {
		`{"id": "a9701b22-2b78-5ad6-9b8b-fd2fbc886cbc", "host": "127.0.0.1", "name": "s0", "path": null, "port": 9, "tags": null, "enabled": true, "retries": 5, "protocol": "http", "created_at": 1795944273, "tls_verify": null, "updated_at": 1795944273, "read_timeout": 60000, "write_timeout": 60000, "ca_certificates": null, "connect_timeout": 60000, "tls_verify_depth": null, "client_certificate": null}`,
		`{"id": "b9701b22-2b78-5ad6-9b8b-fd2fbc886cbc", "host": "up.test", "name": "caf\u00e9 \"s\"", "path": "/a/b", "port": 443, "tags": ["x", "y\u00fc", ""], "enabled": false, "retries": 0, "protocol": "https", "created_at": -1, "tls_verify": false, "updated_at": 0, "read_timeout": 1, "write_timeout": 2147483646, "ca_certificates": [], "connect_timeout": 3, "tls_verify_depth": 64, "client_certificate": {"id": "c9701b22-2b78-5ad6-9b8b-fd2fbc886cbc"}}`,
		`{"id":"x","name":"ü and a tab\t","host":"\u00fc\/","enabled":true}`,
	},
	"routes": {
		`{"id": "c373503a-4c04-5b1a-ad10-db92c1d6dc28", "name": "r0", "snis": null, "tags": null, "hosts": null, "paths": ["/s0"], "headers": null, "methods": null, "service": {"id": "a9701b22-2b78-5ad6-9b8b-fd2fbc886cbc"}, "sources": null, "protocols": ["http", "https"], "created_at": 1795944273, "strip_path": true, "updated_at": 1795944273, "destinations": null, "path_handling": "v0", "preserve_host": false, "regex_priority": 0, "request_buffering": true, "response_buffering": true, "https_redirect_status_code": 426}`,
		`{"id": "d373503a-4c04-5b1a-ad10-db92c1d6dc28", "name": null, "snis": ["a.test"], "tags": ["t"], "hosts": ["*.a.test", "b.test"], "paths": ["~/v\\d+/x", "/"], "headers": {"x-a": ["1", "2"], "x-b": []}, "methods": ["GET", "POST"], "service": null, "sources": null, "protocols": ["https"], "created_at": 1, "strip_path": false, "updated_at": 2, "destinations": null, "path_handling": "v1", "preserve_host": true, "regex_priority": -7, "request_buffering": false, "response_buffering": false, "https_redirect_status_code": 308}`,
	},
	"plugins": {
		`{"id": "d9b0e239-09c5-5824-bbbf-4dca3b5ef732", "name": "key-auth", "tags": null, "route": null, "config": {"realm": null, "anonymous": null, "key_names": ["apikey"], "key_in_body": false, "key_in_query": true, "key_in_header": true, "hide_credentials": false, "run_on_preflight": true}, "enabled": true, "service": {"id": "a9701b22-2b78-5ad6-9b8b-fd2fbc886cbc"}, "consumer": null, "ordering": null, "protocols": ["grpc", "grpcs", "http", "https"], "created_at": 1795944273, "updated_at": 1795944273, "instance_name": null}`,
		`{"id": "e9b0e239-09c5-5824-bbbf-4dca3b5ef732", "name": "rate-limiting", "tags": ["a"], "route": {"id": "r"}, "config": {"minute": 5, "hour": 1.5e3, "policy": "local", "nested": {"a": [1, -0.25, "x", null, true, {"b": {}}], "e": []}}, "enabled": false, "service": null, "consumer": {"id": "c"}, "ordering": {"before": {"access": ["key-auth"]}}, "protocols": [], "created_at": 0, "updated_at": 0, "instance_name": "rl \u2603"}`,
	},
	"consumers": {
		`{"id": "50c2183e-62b3-5f8e-8dc1-b00094090926", "tags": null, "username": "c0", "custom_id": null, "created_at": 1795944273, "updated_at": 1795944273}`,
		`{"id": "60c2183e-62b3-5f8e-8dc1-b00094090926", "tags": ["a", "b"], "username": null, "custom_id": "x-1", "created_at": 1, "updated_at": 2}`,
	},
	"keyauth_credentials": {
		`{"id": "d2bdf78a-7959-591c-8bc8-14c5b220c757", "key": "k0", "tags": null, "consumer": {"id": "50c2183e-62b3-5f8e-8dc1-b00094090926"}, "created_at": 1795944273}`,
		`{"id": "e2bdf78a-7959-591c-8bc8-14c5b220c757", "key": "k\"1", "ttl": 30, "tags": [], "consumer": {"id": "c"}, "created_at": 1}`,
		`{"id": "f2bdf78a-7959-591c-8bc8-14c5b220c757", "key": "k2", "ttl": null, "tags": null, "consumer": null, "created_at": 1, "extra": {"a": [1, "b"]}}`,
	},
}

func TestStoredReadersTakeStoredDocs(t *testing.T) {
	for _, k := range storedReaders {
		for i, doc := range storedDocs[k.kind] {
			t.Run(k.kind, func(t *testing.T) {
				got, ok := k.read([]byte(doc))
				if !ok {
					t.Fatalf("document %d: got no decoding, want the reader to take it", i)
				}
				want, err := k.std([]byte(doc))
				if err != nil {
					t.Fatalf("document %d: encoding/json: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("document %d:\ngot  %#v\nwant %#v (encoding/json)", i, got, want)
				}
			})
		}
	}
}

// Documents a reader must leave to encoding/json, which decodes them
// differently from a plain reading, or refuses them: each kind's Decode
// must give encoding/json's value or error for every one.
var leftToEncodingJSON = []struct {
	name, doc string
}{
	{"a key matching a field with another case", `{"id": "a", "ID": "b"}`},
	{"a key matching a field with another case alone", `{"Name": "a"}`},
	{"a duplicate key", `{"id": "a", "id": "b"}`},
	{"a duplicate map", `{"config": {"a": 1}, "config": {"b": 2}}`},
	{"a fraction in an integer", `{"created_at": 1.0}`},
	{"an exponent in an integer", `{"created_at": 1e3}`},
	{"an integer overflowing", `{"created_at": 9223372036854775808}`},
	{"a string for an integer", `{"created_at": "1"}`},
	{"a number for a string", `{"id": 1}`},
	{"a number for a bool", `{"enabled": 1}`},
	{"a null in a list", `{"tags": ["a", null]}`},
	{"a list of sources", `{"sources": [{"ip": "10.0.0.0/8"}], "destinations": [{"port": 80}]}`},
	{"a null header list", `{"headers": {"x": null}}`},
	{"a key with an escape", `{"i\u0064": "a"}`},
	{"a non-ASCII key", `{"ñame": "a"}`},
	{"trailing bytes", `{"id": "a"} x`},
	{"two documents", `{"id": "a"}{"id": "b"}`},
	{"a trailing comma", `{"id": "a",}`},
	{"a trailing comma in a list", `{"tags": ["a",]}`},
	{"a missing comma", `{"id": "a" "tags": null}`},
	{"a missing colon", `{"id" "a"}`},
	{"a leading zero", `{"created_at": 01}`},
	{"a bare minus", `{"config": {"a": -}}`},
	{"a dot without digits", `{"config": {"a": 1.}}`},
	{"an exponent without digits", `{"config": {"a": 1e}}`},
	{"a float overflowing", `{"config": {"a": 1e999}}`},
	{"a misspelt literal", `{"enabled": tru}`},
	{"a literal with a tail", `{"enabled": truex}`},
	{"an unterminated string", `{"id": "a`},
	{"an unterminated object", `{"id": "a"`},
	{"a control byte in a string", "{\"id\": \"a\x01\"}"},
	{"a bad escape", `{"id": "\x"}`},
	{"a lone surrogate", `{"id": "\ud800"}`},
	{"invalid UTF-8", "{\"id\": \"\xff\"}"},
	{"null", `null`},
	{"a list", `[]`},
	{"empty", ``},
	{"a NUL after the document", "{}\x00"},
	{"a deep value", `{"config": {"a": ` + nested(100) + `}}`},
	{"a number for a map", `{"config": 1}`},
	{"an unknown key with a bad value", `{"zzz": [1,,2]}`},
}

func nested(n int) string {
	s := "1"
	for range n {
		s = "[" + s + "]"
	}
	return s
}

func TestStoredDecodeAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range leftToEncodingJSON {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range storedReaders {
				if _, ok := k.read([]byte(c.doc)); ok && c.name != "null" {
					// Some cases concern fields one kind has: the others
					// may take the document, and must then agree.
					sameAsEncodingJSON(t, k.kind, k.read, k.std, []byte(c.doc))
				}
				kind, _ := KindByName(k.kind)
				got, gotErr := kind.Decode([]byte(c.doc))
				want, wantErr := k.std([]byte(c.doc))
				if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
					t.Fatalf("%s: got error %v, want %v", k.kind, gotErr, wantErr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %#v, want %#v", k.kind, got, want)
				}
			}
		})
	}
}

// sameAsEncodingJSON fails unless a document the reader took decodes to
// what encoding/json makes of it.
func sameAsEncodingJSON(t *testing.T, kind string, read func([]byte) (any, bool), std func([]byte) (any, error), doc []byte) {
	t.Helper()
	got, ok := read(doc)
	if !ok {
		return
	}
	want, err := std(doc)
	if err != nil {
		t.Fatalf("%s: the reader took %q, encoding/json refuses it: %v", kind, doc, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %q:\ngot  %#v\nwant %#v (encoding/json)", kind, doc, got, want)
	}
}

// FuzzStoredReaders: whatever a reader takes decodes as encoding/json
// decodes it.
func FuzzStoredReaders(f *testing.F) {
	for _, docs := range storedDocs {
		for _, d := range docs {
			f.Add([]byte(d))
		}
	}
	for _, c := range leftToEncodingJSON {
		f.Add([]byte(c.doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, k := range storedReaders {
			sameAsEncodingJSON(t, k.kind, k.read, k.std, doc)
		}
	})
}

// The reader of a kind takes a document as encoding/json writes it too
// (no blanks), the form DB-less nodes and the configuration cache hold.
func TestStoredReadersTakeMarshalledDocs(t *testing.T) {
	for _, k := range storedReaders {
		for i, doc := range storedDocs[k.kind] {
			var m map[string]any
			if err := json.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatal(err)
			}
			compact, _ := json.Marshal(m)
			if _, ok := k.read(compact); !ok {
				t.Errorf("%s document %d: got no decoding of %s, want the reader to take it", k.kind, i, compact)
			}
			sameAsEncodingJSON(t, k.kind, k.read, k.std, compact)
		}
	}
}

// BenchmarkStoredDecode decodes the first stored document of each kind
// with its reader (Kind.Decode) and with encoding/json.
func BenchmarkStoredDecode(b *testing.B) {
	for _, k := range storedReaders {
		doc := []byte(storedDocs[k.kind][0])
		kind, _ := KindByName(k.kind)
		b.Run(k.kind+"/reader", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kind.Decode(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.kind+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.std(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
