package admin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzReadBody sends arbitrary bodies (JSON, form, multipart, or any
// content type) to the Admin API's body decoding for every entity kind,
// then to its schema: it must never panic, and whatever is refused must
// map to a 4xx answer with Kong's error JSON, never a 500. The body is
// capped as the router caps it, so an oversized body takes the 413 path.
func FuzzReadBody(f *testing.F) {
	f.Add("application/json", []byte(`{"name":"s","url":"http://b.test:81/p","tags":["a"]}`))
	f.Add("application/json", []byte(`{"paths":["~/a("],"headers":{"x":["~*y"]},"service":{"id":"x"}}`))
	f.Add("application/json; charset=utf-8", []byte(`[1,{"a":{"b":[null,1e400,"\ud800"]}}]`))
	f.Add("application/x-www-form-urlencoded", []byte("paths[1]=/a&paths[]=/b&service.id=x&config.minute=5&a[b][c]=1"))
	f.Add("application/x-www-form-urlencoded", []byte("%zz=1&=&&a[=1"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\nm\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"cert\"; filename=\"c.pem\"\r\n\r\n-----BEGIN\r\n--XX"))
	f.Add("multipart/form-data", []byte("--\r\n"))
	f.Add("text/plain", []byte("name=s"))
	f.Add("", []byte(""))
	kinds := registeredKinds().order
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, k := range kinds {
			r := httptest.NewRequest(http.MethodPost, "/"+k.name, bytes.NewReader(body))
			r.Header.Set("Content-Type", contentType)
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 4096)
			in, err := readBody(r, k)
			if err != nil {
				if status, _ := errorResponse(err); status < 400 || status >= 500 {
					t.Fatalf("%s: body refused with %v answers %d, want 4xx", k.name, err, status)
				}
				continue
			}
			if _, verr := k.schema.Validate(in); verr != nil {
				if status, _ := errorResponse(verr); status < 400 || status >= 500 {
					t.Fatalf("%s: schema refusal %v answers %d, want 4xx", k.name, verr, status)
				}
			}
		}
	})
}
