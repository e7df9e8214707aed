package entity

import (
	"errors"
	"testing"
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
