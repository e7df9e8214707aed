package testutil

import (
	"encoding/json"
	"fmt"
	"testing"
)

// DeclarativeFixture is a declarative configuration with an entity of
// every registered kind, in the nested layout decK's dump writes (kong/db/schema/others/
// declarative_config.lua nests every foreign relationship): routes and
// plugins under their service, a plugin under its route, credentials
// under their consumer, targets under their upstream, SNIs under their
// certificate, keys under their key set. References outside the nesting
// are by name, as decK writes them.
func DeclarativeFixture(t testing.TB) string {
	t.Helper()
	ca := NewCert(t, CertOptions{CA: true})
	leaf := NewCert(t, CertOptions{DNSNames: []string{"a.test"}})
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`_format_version: "3.0"
_comment: every kind
ca_certificates:
- cert: %s
  tags: [ca]
certificates:
- id: 6ba7b810-9dad-41d1-80b4-00c04fd43001
  cert: %s
  key: %s
  snis:
  - name: a.test
  - b.test
services:
- name: echo
  url: https://upstream.test:8443/base
  client_certificate: 6ba7b810-9dad-41d1-80b4-00c04fd43001
  routes:
  - name: r1
    paths: [/echo]
    plugins:
    - name: key-auth
      config:
        key_names: [apikey]
  - name: r2
    hosts: [a.test]
  plugins:
  - name: rate-limiting
    config: {minute: 5, policy: local}
- name: other
  host: other.test
upstreams:
- name: upstream.test
  algorithm: least-connections
  targets:
  - target: 10.0.0.1:8080
    weight: 50
  - target: 10.0.0.2:8080
consumers:
- username: alice
  custom_id: a-1
  keyauth_credentials:
  - key: secret-key
  basicauth_credentials:
  - username: alice
    password: pass
  hmacauth_credentials:
  - username: alice-hmac
    secret: s
  jwt_secrets:
  - key: iss-alice
    secret: s
  acls:
  - group: admins
  oauth2_credentials:
  - name: app
    client_id: cid
    client_secret: csecret
    redirect_uris: [https://a.test/cb]
  plugins:
  - name: rate-limiting
    config: {second: 1}
- username: bob
plugins:
- name: correlation-id
key_sets:
- name: set1
  keys:
  - name: k1
    kid: k1
    pem:
      public_key: %s
routes:
- name: top
  paths: [/top]
  service: other
`, q(ca.CertPEM), q(leaf.CertPEM), q(leaf.KeyPEM), q(leaf.PublicKeyPEM(t)))
}
