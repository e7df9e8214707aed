// Package tlsconf owns the proxy's TLS material and policy: the protocol
// versions and cipher suites kong.conf's ssl_cipher_suite, ssl_ciphers
// and ssl_protocols select, the certificate table compiled from Kong's
// certificates and SNIs entities (looked up by server name during a
// handshake), the default certificate (ssl_cert or one generated at
// start, as Kong does), and the client side of upstream TLS (CA
// certificates, verification depth, client certificates). It parses and
// compiles; it opens no socket, and reads files only for ssl_cert at
// start (LoadPairs).
package tlsconf

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// Policy is what a TLS listener accepts: protocol versions and, for TLS
// 1.2 and below, cipher suites (Go does not let TLS 1.3's be chosen; all
// of them are safe, as Mozilla's guidelines say).
type Policy struct {
	MinVersion   uint16
	MaxVersion   uint16
	CipherSuites []uint16 // nil: Go's defaults
}

// Kong's ssl_cipher_suite presets (kong/conf_loader/constants.lua
// CIPHER_SUITES, Mozilla's Server Side TLS 5.7). The DHE suites they name
// have no Go implementation and are left out.
var suites = map[string]struct {
	protocols string
	ciphers   string
}{
	"modern": {protocols: "TLSv1.3"},
	"intermediate": {protocols: "TLSv1.2 TLSv1.3", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" +
		"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"},
	"old": {protocols: "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3", ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
		"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" +
		"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA256:" +
		"ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:" +
		"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:" +
		"AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:DES-CBC3-SHA"},
}

// SuiteNames are the ssl_cipher_suite values Grapevine takes: Kong's
// presets and "custom" (ssl_ciphers and ssl_protocols as written).
// Kong's "fips" needs OpenSSL's FIPS cipher selection and is not one.
var SuiteNames = []string{"modern", "intermediate", "old", "custom"}

// opensslCiphers maps OpenSSL's names of the TLS 1.2 and below suites Go
// implements to Go's identifiers.
var opensslCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":        tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
}

// unimplemented are OpenSSL suites Kong's presets name that Go lacks
// (finite-field Diffie-Hellman, a few SHA-384 CBC suites): skipped
// rather than refused, so the presets and configurations copied from
// Kong load.
var unimplemented = map[string]bool{
	"DHE-RSA-AES128-GCM-SHA256": true, "DHE-RSA-AES256-GCM-SHA384": true, "DHE-RSA-CHACHA20-POLY1305": true,
	"DHE-RSA-AES128-SHA256": true, "DHE-RSA-AES256-SHA256": true, "ECDHE-ECDSA-AES256-SHA384": true,
	"ECDHE-RSA-AES256-SHA384": true, "AES256-SHA256": true,
}

var protocolVersions = map[string]uint16{
	"TLSv1": tls.VersionTLS10, "TLSv1.1": tls.VersionTLS11, "TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13,
}

// ParsePolicy turns kong.conf's ssl_cipher_suite, ssl_ciphers and
// ssl_protocols into a Policy. As in Kong (kong/conf_loader/parse.lua), a
// preset sets both the ciphers and the protocols, whatever ssl_ciphers
// and ssl_protocols say; with "custom" those two are used as written.
func ParsePolicy(suite, ciphers, protocols string) (Policy, error) {
	if suite != "custom" {
		preset, ok := suites[suite]
		if !ok {
			return Policy{}, fmt.Errorf("undefined cipher suite %q, expected one of: %s", suite, strings.Join(SuiteNames, ", "))
		}
		ciphers, protocols = preset.ciphers, preset.protocols
	}
	p, err := parseProtocols(protocols)
	if err != nil {
		return Policy{}, err
	}
	if p.CipherSuites, err = parseCiphers(ciphers); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// parseProtocols reads a list such as "TLSv1.2 TLSv1.3". Go enables a
// range of versions, so a list with a hole in it is refused.
func parseProtocols(list string) (Policy, error) {
	var p Policy
	seen := map[uint16]bool{}
	for _, name := range strings.Fields(list) {
		v, ok := protocolVersions[name]
		if !ok {
			return p, fmt.Errorf("ssl_protocols: unknown protocol %q, expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3", name)
		}
		seen[v] = true
		if p.MinVersion == 0 || v < p.MinVersion {
			p.MinVersion = v
		}
		p.MaxVersion = max(p.MaxVersion, v)
	}
	if len(seen) == 0 {
		return p, fmt.Errorf("ssl_protocols: no protocol named")
	}
	for v := p.MinVersion; v <= p.MaxVersion; v++ {
		if !seen[v] {
			return p, fmt.Errorf("ssl_protocols %q: the versions must be consecutive", list)
		}
	}
	return p, nil
}

// parseCiphers reads an OpenSSL cipher list of suite names ("A:B:C");
// OpenSSL's expressions ("HIGH:!aNULL") are not understood and refused.
func parseCiphers(list string) ([]uint16, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []uint16
	for _, name := range strings.FieldsFunc(list, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		if id, ok := opensslCiphers[name]; ok {
			out = append(out, id)
			continue
		}
		if !unimplemented[name] {
			return nil, fmt.Errorf("ssl_ciphers: unknown or unsupported cipher %q (OpenSSL suite names only, such as ECDHE-RSA-AES128-GCM-SHA256)", name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ssl_ciphers %q: none of these ciphers is available", list)
	}
	return out, nil
}

// Apply sets the policy on a server's tls.Config.
func (p Policy) Apply(c *tls.Config) {
	c.MinVersion, c.MaxVersion = p.MinVersion, p.MaxVersion
	c.CipherSuites = p.CipherSuites
}
