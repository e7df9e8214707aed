package entity

import (
	"encoding/json"
	"errors"
	"net/url"
	"runtime"
	"strings"
	"testing"
)

func TestValidationMessages(t *testing.T) {
	tests := []struct {
		name   string
		schema *Schema
		body   string
		want   string // the error message, "" = valid
	}{
		{"service ok", Services, `{"host":"a.test"}`, ""},
		{"host missing", Services, `{}`, "schema violation (host: required field missing)"},
		{"unknown field", Services, `{"host":"a.test","foo":1}`, "schema violation (foo: unknown field)"},
		{"expected string", Services, `{"host":1}`, "schema violation (host: expected a string)"},
		{"expected integer", Services, `{"host":"a","port":1.5}`, "schema violation (port: expected an integer)"},
		{"expected boolean", Services, `{"host":"a","enabled":"yes"}`, "schema violation (enabled: expected a boolean)"},
		{"expected array", Services, `{"host":"a","ca_certificates":"x"}`, "schema violation (ca_certificates: expected an array)"},
		{"expected set", Services, `{"host":"a","tags":"x"}`, "schema violation (tags: expected a set)"},
		{"expected record", Routes, `{"paths":["/"],"service":"x"}`, "schema violation (service: expected a record)"},
		{"expected map", Routes, `{"headers":[]}`, "schema violation (headers: expected a map)"},
		{"port range", Services, `{"host":"a","port":70000}`, "schema violation (port: value should be between 0 and 65535)"},
		{"timeout range", Services, `{"host":"a","read_timeout":0}`, "schema violation (read_timeout: value should be between 1 and 2147483646)"},
		{"one of", Services, `{"host":"a","protocol":"ftp"}`, "schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)"},
		{"path start", Services, `{"host":"a","path":"x"}`, "schema violation (path: should start with: /)"},
		{"path empty segment", Services, `{"host":"a","path":"/a//b"}`, "schema violation (path: must not have empty segments)"},
		{"path rfc3986", Services, `{"host":"a","path":"/a b"}`, "schema violation (path: invalid path: '/a b' (characters outside of the reserved list of RFC 3986 found))"},
		{"path percent", Services, `{"host":"a","path":"/a%zz"}`, "schema violation (path: invalid url-encoded value: '%zz')"},
		{"host invalid", Services, `{"host":"a b"}`, "schema violation (host: invalid value: a b)"},
		{"host with port", Services, `{"host":"a.test:80"}`, "schema violation (host: must not have a port)"},
		{"utf8 name", Services, `{"host":"a","name":"a b"}`, "schema violation (name: invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~)"},
		{"bad tag", Services, `{"host":"a","tags":["a,b"]}`, "schema violation (tags.1: invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences)"},
		// No Kong rule (Kong's database answers 500): what text/jsonb cannot
		// hold, and names or tags longer than an index entry.
		{"route path NUL", Routes, `{"paths":["/\u0000"]}`, "schema violation (paths.1: invalid NUL byte detected at position 2)"},
		{"header name NUL", Routes, `{"headers":{"\u0000":["a"]}}`, "schema violation (headers.\x00: bad header name '\x00', allowed characters are A-Z, a-z, 0-9, '_', and '-')"},
		{"name too long", Services, `{"host":"a","name":"` + strings.Repeat("n", 2049) + `"}`, "schema violation (name: length must be at most 2048 bytes)"},
		{"tag too long", Services, `{"host":"a","tags":["` + strings.Repeat("t", 2049) + `"]}`, "schema violation (tags.1: length must be at most 2048 bytes)"},
		{"bad uuid", Services, `{"host":"a","id":"x"}`, "schema violation (id: expected a valid UUID)"},
		{"null required", Services, `{"host":"a","protocol":null}`, "schema violation (protocol: required field missing)"},
		{"conditional path", Services, `{"host":"a","protocol":"tcp","path":"/x"}`, "2 schema violations (failed conditional validation given value of field 'protocol'; path: value must be null)"},
		{"two errors sorted", Services, `{"port":-1}`, "2 schema violations (host: required field missing; port: value should be between 0 and 65535)"},
		{"route ok", Routes, `{"paths":["/a"]}`, ""},
		{"route https needs matcher", Routes, `{}`, "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"},
		{"route http needs matcher", Routes, `{"protocols":["http"]}`, "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')"},
		{"route grpc", Routes, `{"protocols":["grpc"]}`, "schema violation (must set one of 'hosts', 'headers', 'paths' when 'protocols' is 'grpc')"},
		{"route grpc strip_path", Routes, `{"protocols":["grpc"],"paths":["/"],"strip_path":true}`, "schema violation (strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs')"},
		{"route tcp", Routes, `{"protocols":["tcp"]}`, "schema violation (must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp')"},
		{"route tcp methods", Routes, `{"protocols":["tcp"],"methods":["GET"]}`, "schema violation (methods: cannot set 'methods' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp')"},
		{"route tls_passthrough", Routes, `{"protocols":["tls_passthrough"]}`, "schema violation (must set snis when 'protocols' is 'tls_passthrough')"},
		{"route exclusive", Routes, `{"protocols":["http","tcp"],"paths":["/"]}`, "schema violation (these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp'))"},
		{"route http sources", Routes, `{"paths":["/"],"sources":[{"ip":"10.0.0.0/8"}]}`, "schema violation (sources: cannot set 'sources' when 'protocols' is 'http' or 'https')"},
		{"route snis on http", Routes, `{"protocols":["http"],"paths":["/"],"snis":["a.test"]}`, "2 schema violations (failed conditional validation given value of field 'protocols'; snis: 'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough')"},
		{"route empty protocols", Routes, `{"protocols":[],"paths":["/"]}`, "schema violation (protocols: length must be at least 1)"},
		{"route path start", Routes, `{"paths":["a"]}`, "schema violation (paths.1: should start with: / (fixed path) or ~/ (regex path))"},
		{"route path normalized", Routes, `{"paths":["/a/../b"]}`, "schema violation (paths.1: non-normalized path, consider use '/b' instead)"},
		{"route path percent", Routes, `{"paths":["/%7e"]}`, "schema violation (paths.1: non-normalized path, consider use '/~' instead)"},
		{"route regex", Routes, `{"paths":["~/a["]}`, "schema violation (paths.1: invalid regex: '/a[' (PCRE returned: error parsing regexp: missing closing ]: `[`))"},
		{"route method", Routes, `{"methods":["get"]}`, "schema violation (methods.1: invalid value: get)"},
		{"route wildcard twice", Routes, `{"hosts":["*.a.*"]}`, "schema violation (hosts.1: invalid wildcard: must have at most one wildcard)"},
		{"route wildcard middle", Routes, `{"hosts":["a.*.b"]}`, "schema violation (hosts.1: invalid wildcard: must be placed at leftmost or rightmost label)"},
		{"route host port", Routes, `{"hosts":["a.test:99999"]}`, "schema violation (hosts.1: invalid port number)"},
		{"route bad host", Routes, `{"hosts":["a b"]}`, "schema violation (hosts.1: invalid hostname: a b)"},
		{"route host header", Routes, `{"headers":{"Host":["a"]}}`, "schema violation (headers.Host: cannot contain 'host' header, which must be specified in the 'hosts' attribute)"},
		{"route redirect code", Routes, `{"paths":["/"],"https_redirect_status_code":200}`, "schema violation (https_redirect_status_code: expected one of: 426, 301, 302, 307, 308)"},
		{"route bad cidr", Routes, `{"protocols":["tcp"],"sources":[{"ip":"x"}]}`, "schema violation (sources.1.ip: invalid ip or cidr range: 'x')"},
		{"route foreign id", Routes, `{"paths":["/"],"service":{"id":"x"}}`, "schema violation (service.id: expected a valid UUID)"},
		// Kong 3.9 kong/db/schema/init.lua validate_field: a foreign value
		// passes validate_primary_key(value, true), which ignores keys other
		// than the primary key; go-kong sends the whole Service.
		{"route foreign whole entity", Routes, `{"paths":["/"],"service":{"id":"8f0a5d0c-2b6e-4f41-9a57-2d0b7d6b1f00","name":"s","host":"h","port":80}}`, ""},
		{"route foreign no id", Routes, `{"paths":["/"],"service":{"host":"h"}}`, "2 schema violations (service.host: unknown field; service.id: required field missing)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := DecodeBody("application/json", []byte(tc.body), tc.schema)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			_, verr := tc.schema.Validate(doc)
			got := ""
			if verr != nil {
				got = verr.Message
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestForeignKeepsOnlyTheID: the whole parent entity is accepted as a
// reference (Kong 3.9 validate_primary_key(value, true) in
// kong/db/schema/init.lua), and only its id is stored.
func TestForeignKeepsOnlyTheID(t *testing.T) {
	const id = "8f0a5d0c-2b6e-4f41-9a57-2d0b7d6b1f00"
	doc, err := Routes.Validate(map[string]any{"paths": []any{"/"}, "service": map[string]any{"id": id, "name": "s", "host": "h"}})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	got, _ := json.Marshal(doc["service"])
	if want := `{"id":"` + id + `"}`; string(got) != want {
		t.Errorf("got service %s, want %s", got, want)
	}
}

func TestDefaults(t *testing.T) {
	doc, err := Routes.Validate(map[string]any{"paths": []any{"/"}})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	got, _ := json.Marshal(doc)
	want := `{"created_at":null,"destinations":null,"headers":null,"hosts":null,"https_redirect_status_code":426,"id":null,"methods":null,"name":null,"path_handling":"v0","paths":["/"],"preserve_host":false,"protocols":["http","https"],"regex_priority":0,"request_buffering":true,"response_buffering":true,"service":null,"snis":null,"sources":null,"strip_path":true,"tags":null,"updated_at":null}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	grpc, err := Routes.Validate(map[string]any{"protocols": []any{"grpc"}, "paths": []any{"/"}})
	if err != nil || grpc["strip_path"] != false {
		t.Errorf("got strip_path %v (%v), want false for grpc", grpc["strip_path"], err)
	}
}

func TestServiceURL(t *testing.T) {
	tests := []struct {
		url   string
		proto string
		host  string
		port  int64
		path  any
	}{
		{"http://a.test", "http", "a.test", 80, nil},
		{"https://a.test", "https", "a.test", 443, nil},
		{"https://a.test:8443/x/y", "https", "a.test", 8443, "/x/y"},
		{"grpc://10.0.0.1:9000", "grpc", "10.0.0.1", 9000, nil},
		// kong/db/schema/entities/services.lua's url shorthand defaults
		// the port for http and https only; other schemes get 80.
		{"grpcs://a.test", "grpcs", "a.test", 80, nil},
		{"tls://a.test", "tls", "a.test", 80, nil},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			doc, err := Services.Validate(map[string]any{"url": tc.url})
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if doc["protocol"] != tc.proto || doc["host"] != tc.host || doc["port"] != tc.port || doc["path"] != tc.path {
				t.Errorf("got %v %v %v %v, want %v %v %v %v", doc["protocol"], doc["host"], doc["port"], doc["path"], tc.proto, tc.host, tc.port, tc.path)
			}
		})
	}
}

func TestFormDecoding(t *testing.T) {
	tests := []struct {
		name string
		form string
		want string
	}{
		{"brackets append", "paths[]=/a&paths[]=/b", `{"paths":["/a","/b"]}`},
		{"indexes order", "paths[2]=/b&paths[1]=/a", `{"paths":["/a","/b"]}`},
		{"repeated keys", "methods=GET&methods=POST", `{"methods":["GET","POST"]}`},
		{"scalar to array", "hosts=a.test", `{"hosts":["a.test"]}`},
		{"dotted foreign", "service.id=x", `{"service":{"id":"x"}}`},
		{"typed values", "strip_path=false&regex_priority=3", `{"regex_priority":3,"strip_path":false}`},
		{"empty is null", "name=", `{"name":null}`},
		{"headers map", "headers.x-a=1&headers.x-a=2", `{"headers":{"x-a":["1","2"]}}`},
		{"sources records", "sources[1].ip=10.0.0.1&sources[1].port=80", `{"sources":[{"ip":"10.0.0.1","port":80}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values, _ := url.ParseQuery(tc.form)
			doc, err := DecodeForm(values, Routes)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, _ := json.Marshal(doc)
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestFormUTF8 follows kong/db/schema/typedefs.lua validate_utf8_string:
// names and tags report the 1-based position of the first invalid byte.
func TestFormUTF8(t *testing.T) {
	tests := []struct{ form, want string }{
		{"host=a&name=ab%C0", "schema violation (name: invalid utf-8 character sequence detected at position 3)"},
		{"host=a&tags=%E2%82", "schema violation (tags.1: invalid utf-8 character sequence detected at position 1)"},
		{"host=a&name=%C3%A9t%C3%A9", ""},
	}
	for _, tc := range tests {
		t.Run(tc.form, func(t *testing.T) {
			doc, err := DecodeBody("application/x-www-form-urlencoded", []byte(tc.form), Services)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			_, verr := Services.Validate(doc)
			got := ""
			if verr != nil {
				got = verr.Message
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	tests := []struct {
		name, ct, body string
		want           error
	}{
		{"bad json", "application/json", `{"a":`, ErrMalformedJSON},
		{"json array", "application/json", `[1]`, ErrMalformedJSON},
		{"trailing", "application/json", `{} {}`, ErrMalformedJSON},
		// Go's decoder would store U+FFFD in place of the invalid byte.
		{"invalid utf-8", "application/json", "{\"host\":\"a\xC0\"}", ErrMalformedJSON},
		{"text", "text/plain", `a`, ErrUnsupportedContentType},
		{"multipart no boundary", "multipart/form-data", `a`, ErrMalformedForm},
		// lua-cjson's decode_max_depth (1000), which Kong's JSON bodies meet.
		{"json too deep", "application/json", `{"a":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, ErrMalformedJSON},
		{"form key too deep", "application/x-www-form-urlencoded", "a" + strings.Repeat("[]", 1001) + "=1", ErrFormTooDeep},
		// kong/api/arguments.lua: max_post_args = 1000.
		{"too many arguments", "application/x-www-form-urlencoded", strings.Repeat("a=1&", 1001), ErrTooManyArguments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBody(tc.ct, []byte(tc.body), Services)
			if err == nil || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("brackets inside JSON strings do not nest", func(t *testing.T) {
		body := `{"host":"a.test","name":"` + strings.Repeat(`[{\"`, 2000) + `"}`
		if _, err := DecodeBody("application/json", []byte(body), Services); err != nil {
			t.Errorf("got %v, want the body decoded", err)
		}
	})
	t.Run("1000 arguments are fine", func(t *testing.T) {
		if _, err := DecodeBody("application/x-www-form-urlencoded", []byte(strings.Repeat("tags=a&&", 1000)), Services); err != nil {
			t.Errorf("got %v, want the body decoded", err)
		}
	})
	t.Run("multipart", func(t *testing.T) {
		body := "--XX\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\nm.test\r\n--XX--\r\n"
		doc, err := DecodeBody("multipart/form-data; boundary=XX", []byte(body), Services)
		if err != nil || doc["host"] != "m.test" {
			t.Errorf("got %v, %v; want host m.test", doc, err)
		}
	})
}

// TestDeepFormKeyMemory: a 4 MB key of two million levels used to build two
// million nested maps (about 940 MB) before overflowing the stack. It is
// now refused after reading MaxNesting levels; what decoding allocates
// stays a small multiple of the body.
func TestDeepFormKeyMemory(t *testing.T) {
	body := []byte("name=x&host=h&a" + strings.Repeat(".b", 2_000_000) + "=1")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeBody("application/x-www-form-urlencoded", body, Services)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormTooDeep) {
		t.Fatalf("got %v, want ErrFormTooDeep", err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(body)); got > limit {
		t.Errorf("got %d bytes allocated, want at most %d (4x the body)", got, limit)
	}
}
