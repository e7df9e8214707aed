package entity

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeAndValidate feeds arbitrary bodies through decoding and both
// schemas: it must never panic, and every rejection must be a decoding
// sentinel or a Kong *Error.
func FuzzDecodeAndValidate(f *testing.F) {
	f.Add("application/json", []byte(`{"host":"a.test","url":"http://b.test:81/p"}`))
	f.Add("application/json", []byte(`{"paths":["~/a(","/b/../c"],"hosts":["*.a.*"],"headers":{"x":["~*y"]}}`))
	f.Add("application/x-www-form-urlencoded", []byte("paths[1]=/a&paths[]=/b&service.id=x&sources[1].ip=1.2.3.4"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\nm\r\n--XX--\r\n"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, s := range []*Schema{Services, Routes} {
			doc, err := DecodeBody(contentType, body, s)
			if err != nil {
				if !errors.Is(err, ErrMalformedJSON) && !errors.Is(err, ErrMalformedForm) && !errors.Is(err, ErrUnsupportedContentType) &&
					!errors.Is(err, ErrFormTooDeep) && !errors.Is(err, ErrTooManyArguments) {
					t.Fatalf("got error %v, want a decoding sentinel", err)
				}
				continue
			}
			out, verr := s.Validate(doc)
			if verr == nil && out == nil {
				t.Fatalf("got neither a document nor an error")
			}
			if verr != nil && (verr.Code != CodeSchemaViolation || verr.Message == "") {
				t.Fatalf("got %+v, want a schema violation", verr)
			}
		}
	})
}

// FuzzJSONKeepsText: a JSON body that decodes holds exactly the text that
// was sent. Go's decoder turns half a surrogate pair into U+FFFD, where
// lua-cjson (Kong's decoder) refuses the body; so U+FFFD may appear in a
// decoded document only if the body itself spelled it.
func FuzzJSONKeepsText(f *testing.F) {
	for _, seed := range []string{`{"a":"\ud800"}`, `{"a":"\uDC00"}`, `{"a":"\ud800\u0041"}`, `{"a":"x\ud83d"}`,
		`{"\ud800":1}`, `{"a":"\\ud800"}`, `{"a":["\ud83d\ude00"]}`, `{"a":"\ud83d\\ude00"}`, `{"a":"\ud83d\u"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := DecodeBody("application/json", body, Services)
		lower := strings.ToLower(string(body))
		if err != nil || strings.Contains(lower, "\ufffd") || strings.Contains(lower, `\ufffd`) {
			return
		}
		if s, ok := findReplacementChar(doc); ok {
			t.Fatalf("body %q decoded to %q, which holds U+FFFD the body did not spell", body, s)
		}
	})
}

// findReplacementChar returns a key or string value in v holding U+FFFD.
func findReplacementChar(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, strings.ContainsRune(t, utf8.RuneError)
	case []any:
		for _, x := range t {
			if s, ok := findReplacementChar(x); ok {
				return s, true
			}
		}
	case map[string]any:
		for k, x := range t {
			if strings.ContainsRune(k, utf8.RuneError) {
				return k, true
			}
			if s, ok := findReplacementChar(x); ok {
				return s, true
			}
		}
	}
	return "", false
}
