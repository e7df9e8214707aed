package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/grapevine-gw/grapevine/internal/testutil"
	"github.com/rs/zerolog"
)

// q quotes s as a JSON string.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func certBody(c *testutil.Cert, extra string) string {
	return `{"cert":` + q(c.CertPEM) + `,"key":` + q(c.KeyPEM) + extra + `}`
}

func snisOf(t *testing.T, body map[string]any) []string {
	t.Helper()
	list, ok := body["snis"].([]any)
	if !ok {
		t.Fatalf("got snis %v, want an array", body["snis"])
	}
	out := []string{}
	for _, v := range list {
		out = append(out, v.(string))
	}
	return out
}

// TestCertificateSNIs: the snis shorthand writes SNI entities with the
// certificate, in one transaction, as kong/db/dao/certificates.lua does;
// kong/api/routes/certificates.lua names a certificate by an SNI.
func TestCertificateSNIs(t *testing.T) {
	e := newTestEnv(t)
	c1 := testutil.NewCert(t, testutil.CertOptions{})
	c2 := testutil.NewCert(t, testutil.CertOptions{})
	created := e.mustCreate("/certificates", certBody(c1, `,"snis":["b.test","*.a.test"]`))
	id := created["id"].(string)

	t.Run("created with sorted snis", func(t *testing.T) {
		if got, want := snisOf(t, created), []string{"*.a.test", "b.test"}; !slices.Equal(got, want) {
			t.Errorf("got snis %v, want %v", got, want)
		}
		if created["key"] != c1.KeyPEM {
			t.Errorf("got key %v, want the key sent (Kong OSS answers it in clear)", created["key"])
		}
		res := e.json("GET", "/snis/b.test", "")
		mustStatus(t, res, http.StatusOK)
		if cert := res.body["certificate"].(map[string]any); cert["id"] != id {
			t.Errorf("got sni certificate %v, want %s", cert, id)
		}
	})
	t.Run("get and list carry snis", func(t *testing.T) {
		res := e.json("GET", "/certificates/"+id, "")
		mustStatus(t, res, http.StatusOK)
		if got := snisOf(t, res.body); len(got) != 2 {
			t.Errorf("GET: got snis %v, want 2", got)
		}
		res = e.json("GET", "/certificates", "")
		mustStatus(t, res, http.StatusOK)
		first := res.body["data"].([]any)[0].(map[string]any)
		if got := snisOf(t, first); len(got) != 2 {
			t.Errorf("list: got snis %v, want 2", got)
		}
	})
	t.Run("named by an sni", func(t *testing.T) {
		res := e.json("GET", "/certificates/b.test", "")
		mustStatus(t, res, http.StatusOK)
		if res.body["id"] != id {
			t.Errorf("got id %v, want %s", res.body["id"], id)
		}
		res = e.json("GET", "/certificates/nope.test", "")
		mustStatus(t, res, http.StatusNotFound)
		jsonEqual(t, res.raw, `{"message":"SNI not found"}`)
		res = e.json("GET", "/certificates/b.test/snis", "")
		mustStatus(t, res, http.StatusOK)
		if n := len(res.body["data"].([]any)); n != 2 {
			t.Errorf("nested list: got %d snis, want 2", n)
		}
	})
	t.Run("an sni of another certificate is refused", func(t *testing.T) {
		res := e.json("POST", "/certificates", certBody(c2, `,"snis":["b.test"]`))
		mustStatus(t, res, http.StatusBadRequest)
		want := "schema violation (snis: b.test already associated with existing certificate '" + id + "')"
		if res.body["message"] != want {
			t.Errorf("got message %v, want %s", res.body["message"], want)
		}
		if n := len(e.json("GET", "/certificates", "").body["data"].([]any)); n != 1 {
			t.Errorf("got %d certificates, want 1: nothing written", n)
		}
	})
	t.Run("duplicate names are refused", func(t *testing.T) {
		res := e.json("POST", "/certificates", certBody(c2, `,"snis":["x.test","x.test"]`))
		mustStatus(t, res, http.StatusBadRequest)
		if res.body["message"] != "schema violation (snis: x.test is duplicated)" {
			t.Errorf("got message %v", res.body["message"])
		}
	})
	t.Run("patch without snis keeps them, with snis replaces them", func(t *testing.T) {
		res := e.json("PATCH", "/certificates/"+id, `{"tags":["t"]}`)
		mustStatus(t, res, http.StatusOK)
		if got := snisOf(t, res.body); len(got) != 2 {
			t.Errorf("got snis %v, want both kept", got)
		}
		res = e.json("PATCH", "/certificates/"+id, `{"snis":["c.test","b.test"]}`)
		mustStatus(t, res, http.StatusOK)
		if got, want := snisOf(t, res.body), []string{"b.test", "c.test"}; !slices.Equal(got, want) {
			t.Errorf("got snis %v, want %v", got, want)
		}
		mustStatus(t, e.json("GET", "/snis/*.a.test", ""), http.StatusNotFound)
	})
	t.Run("put by a new sni name creates a certificate with it", func(t *testing.T) {
		res := e.json("PUT", "/certificates/new.test", certBody(c2, `,"snis":["other.test"]`))
		mustStatus(t, res, http.StatusOK)
		if got, want := snisOf(t, res.body), []string{"new.test", "other.test"}; !slices.Equal(got, want) {
			t.Errorf("got snis %v, want %v", got, want)
		}
		if res.body["id"] == id {
			t.Errorf("got the first certificate's id, want a new one")
		}
	})
	t.Run("delete takes the snis along", func(t *testing.T) {
		mustStatus(t, e.json("DELETE", "/certificates/c.test", ""), http.StatusNoContent)
		for _, name := range []string{"b.test", "c.test"} {
			mustStatus(t, e.json("GET", "/snis/"+name, ""), http.StatusNotFound)
		}
		mustStatus(t, e.json("GET", "/certificates/"+id, ""), http.StatusNotFound)
		mustStatus(t, e.json("DELETE", "/certificates/gone.test", ""), http.StatusNotFound)
	})
	t.Run("flat snis need a certificate", func(t *testing.T) {
		res := e.json("POST", "/snis", `{"name":"flat.test"}`)
		mustStatus(t, res, http.StatusBadRequest)
		if !strings.Contains(res.raw, "certificate: required field missing") {
			t.Errorf("got %s, want certificate required", res.raw)
		}
		mustStatus(t, e.json("GET", "/snis/new.test/certificate", ""), http.StatusNotFound)
	})
}

// TestCertificateValidation: the certificate must parse and the key must
// be the certificate's (kong/db/schema/entities/certificates.lua).
func TestCertificateValidation(t *testing.T) {
	e := newTestEnv(t)
	c1 := testutil.NewCert(t, testutil.CertOptions{})
	c2 := testutil.NewCert(t, testutil.CertOptions{})
	res := e.json("POST", "/certificates", `{"cert":`+q(c1.CertPEM)+`,"key":`+q(c2.KeyPEM)+`}`)
	mustStatus(t, res, http.StatusBadRequest)
	jsonEqual(t, res.raw, `{"code":2,"name":"schema violation","message":"schema violation (certificate does not match key)",
		"fields":{"@entity":["certificate does not match key"]}}`)
	res = e.json("POST", "/certificates", `{"cert":"bar","key":"foo"}`)
	mustStatus(t, res, http.StatusBadRequest)
	fields := res.body["fields"].(map[string]any)
	if !strings.HasPrefix(fields["cert"].(string), "invalid certificate: ") || !strings.HasPrefix(fields["key"].(string), "invalid key: ") {
		t.Errorf("got fields %v, want invalid certificate and invalid key", fields)
	}
}

// TestServiceClientCertificate: a service's client_certificate is a real
// reference (kong/db/schema/entities/services.lua): it must exist, and a
// certificate a service uses cannot be deleted.
func TestServiceClientCertificate(t *testing.T) {
	e := newTestEnv(t)
	c := testutil.NewCert(t, testutil.CertOptions{})
	cert := e.mustCreate("/certificates", certBody(c, ""))
	id := cert["id"].(string)
	missing := "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	res := e.json("POST", "/services", `{"name":"s","url":"https://a.test","client_certificate":{"id":"`+missing+`"}}`)
	mustStatus(t, res, http.StatusBadRequest)
	if want := "the foreign key '{id=\"" + missing + "\"}' does not reference an existing 'certificates' entity."; res.body["message"] != want {
		t.Errorf("got message %v, want %s", res.body["message"], want)
	}
	e.mustCreate("/services", `{"name":"s","url":"https://a.test","client_certificate":{"id":"`+id+`"}}`)
	res = e.json("DELETE", "/certificates/"+id, "")
	mustStatus(t, res, http.StatusBadRequest)
	if want := "an existing 'services' entity references this 'certificates' entity"; res.body["message"] != want {
		t.Errorf("got message %v, want %s", res.body["message"], want)
	}
	res = e.json("GET", "/services/s/client_certificate", "")
	mustStatus(t, res, http.StatusOK)
	if res.body["id"] != id {
		t.Errorf("got %v, want the certificate", res.body["id"])
	}
	mustStatus(t, e.json("DELETE", "/services/s", ""), http.StatusNoContent)
	mustStatus(t, e.json("DELETE", "/certificates/"+id, ""), http.StatusNoContent)
}

// TestCACertificates: a CA certificate's digest is computed and unique,
// and one a service trusts is not deleted
// (kong/db/dao/ca_certificates.lua).
func TestCACertificates(t *testing.T) {
	e := newTestEnv(t)
	ca := testutil.NewCert(t, testutil.CertOptions{CA: true})
	created := e.mustCreate("/ca_certificates", `{"cert":`+q(ca.CertPEM)+`}`)
	id := created["id"].(string)
	if d, _ := created["cert_digest"].(string); len(d) != 64 {
		t.Errorf("got cert_digest %v, want 64 hex digits", created["cert_digest"])
	}
	res := e.json("POST", "/ca_certificates", `{"cert":`+q(ca.CertPEM)+`}`)
	mustStatus(t, res, http.StatusConflict)
	if want := `UNIQUE violation detected on '{cert_digest="` + created["cert_digest"].(string) + `"}'`; res.body["message"] != want {
		t.Errorf("got message %v, want %s", res.body["message"], want)
	}
	leaf := testutil.NewCert(t, testutil.CertOptions{Parent: ca})
	res = e.json("POST", "/ca_certificates", `{"cert":`+q(leaf.CertPEM)+`}`)
	mustStatus(t, res, http.StatusBadRequest)
	e.mustCreate("/services", `{"name":"s","url":"https://a.test","ca_certificates":["`+id+`"]}`)
	res = e.json("DELETE", "/ca_certificates/"+id, "")
	mustStatus(t, res, http.StatusBadRequest)
	sid := e.json("GET", "/services/s", "").body["id"].(string)
	jsonEqual(t, res.raw, `{"code":19,"name":"referenced by others",
		"message":"ca certificate `+id+` is still referenced by services (id = `+sid+`)"}`)
	mustStatus(t, e.json("DELETE", "/services/s", ""), http.StatusNoContent)
	mustStatus(t, e.json("DELETE", "/ca_certificates/"+id, ""), http.StatusNoContent)
}

// TestKeysAndKeySets: keys live in key sets at /key-sets/{ks}/keys, a kid
// is unique within its set (Kong's cache_key), and a set's keys go with
// it (kong/db/schema/entities/keys.lua on_delete = cascade).
func TestKeysAndKeySets(t *testing.T) {
	e := newTestEnv(t)
	c := testutil.NewCert(t, testutil.CertOptions{})
	set := e.mustCreate("/key-sets", `{"name":"ks"}`)
	setID := set["id"].(string)
	pemKey := func(name, kid string) string {
		return `{"name":"` + name + `","kid":"` + kid + `","pem":{"private_key":` + q(c.KeyPEM) + `,"public_key":` + q(c.PublicKeyPEM(t)) + `}}`
	}
	e.mustCreate("/key-sets/ks/keys", pemKey("k1", "kid-1"))
	res := e.json("POST", "/key-sets/ks/keys", pemKey("k2", "kid-1"))
	mustStatus(t, res, http.StatusConflict)
	if want := `UNIQUE violation detected on '{cache_key="keys:kid-1:` + setID + `"}'`; res.body["message"] != want {
		t.Errorf("got message %v, want %s", res.body["message"], want)
	}
	e.mustCreate("/keys", pemKey("k3", "kid-1")) // no set: another cache_key
	res = e.json("GET", "/key-sets/"+setID+"/keys", "")
	mustStatus(t, res, http.StatusOK)
	if n := len(res.body["data"].([]any)); n != 1 {
		t.Errorf("got %d keys in the set, want 1", n)
	}
	mustStatus(t, e.json("DELETE", "/key-sets/ks", ""), http.StatusNoContent)
	mustStatus(t, e.json("GET", "/keys/k1", ""), http.StatusNotFound)
	mustStatus(t, e.json("GET", "/keys/k3", ""), http.StatusOK)
}

// TestPrivateKeysNeverLogged: at the most verbose level, neither a
// refused nor a stored certificate's key appears in the logs.
func TestPrivateKeysNeverLogged(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	st := bootstrappedStore(t)
	w := zerolog.SyncWriter(lockedWriter{&mu, &logs})
	srv := New(Config{Version: "3.9.1", Logger: zerolog.New(w).Level(zerolog.TraceLevel)}, st, &recordingApplier{})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &testEnv{t: t, url: hs.URL, st: st, srv: srv}
	c1 := testutil.NewCert(t, testutil.CertOptions{})
	c2 := testutil.NewCert(t, testutil.CertOptions{})
	e.mustCreate("/certificates", certBody(c1, `,"snis":["a.test"]`))
	mustStatus(t, e.json("POST", "/certificates", `{"cert":`+q(c1.CertPEM)+`,"key":`+q(c2.KeyPEM)+`}`), http.StatusBadRequest)
	mustStatus(t, e.json("POST", "/certificates", `{"cert":`+q(c1.CertPEM)+`,"key":`+q(c2.KeyPEM[:100])+`}`), http.StatusBadRequest)
	mustStatus(t, e.json("POST", "/keys", `{"kid":"k","pem":{"private_key":`+q(c2.KeyPEM[:200])+`}}`), http.StatusBadRequest)
	// Each handler logs before it answers, so every line is in by now.
	mu.Lock()
	defer mu.Unlock()
	for _, secret := range []string{c1.KeyPEM, c2.KeyPEM} {
		body := strings.Split(secret, "\n")[1] // the first line of base64
		if strings.Contains(logs.String(), body) {
			t.Fatalf("a private key appears in the logs:\n%s", logs.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
