package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/grapevine-gw/grapevine/entity"
)

// h2Listens is a proxy_listen of a plain, an ssl+http2 and an ssl-only
// listener, as Kong's default (0.0.0.0:8000, 0.0.0.0:8443 http2 ssl).
const h2Listens = "127.0.0.1:0, 127.0.0.1:0 ssl http2, 127.0.0.1:0 ssl"

// h2Client speaks HTTP/2 only (no fallback to HTTP/1.1), over TLS.
func h2Client(serverName string) *http.Client {
	return &http.Client{Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{ServerName: serverName, InsecureSkipVerify: true}, //nolint:gosec // test certificates
	}}
}

// h1Client speaks HTTP/1.1 only, over TLS.
func h1Client(serverName string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: serverName, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}, //nolint:gosec // test certificates
	}}
}

// answer is what a client got.
type answer struct {
	proto  int
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, url, host, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return answer{resp.ProtoMajor, resp.StatusCode, resp.Header, string(b)}
}

// TestHTTP2SameAnswersAsHTTP1: an ssl listener with http2 serves h2 by
// ALPN (and http/1.1 on the same port) through the same router and
// headers: the upstream sees the same request but for Via's version
// (kong/runloop/handler.lua: "<http_version> <server>", 2 for HTTP/2),
// the client the same answer, 404s in Kong's shape included. An ssl
// listener without http2 does not offer h2 (nginx's listen flags,
// kong/templates/nginx_kong.lua).
func TestHTTP2SameAnswersAsHTTP1(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got-Length", r.Header.Get("Content-Length"))
		w.Header()["Set-Cookie"] = []string{"a=1", "b=2"}
		io.WriteString(w, "ok:"+r.Method+":"+string(b))
	})
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())},
		[]entity.Route{testRoute(idA, "s1", paths("/api"), hosts("a.test"))})
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = h2Listens })
	addrs := s.Addrs()
	h2Addr, sslAddr := addrs[1].Addr.String(), addrs[2].Addr.String()
	_, h2Port, _ := net.SplitHostPort(h2Addr)

	clients := map[string]*http.Client{"h1": h1Client("a.test"), "h2": h2Client("a.test")}
	wantProto := map[string]int{"h1": 1, "h2": 2}
	wantVia := map[string]string{"h1": "1.1 grapevine/9.9.9", "h2": "2 grapevine/9.9.9"}
	for name, c := range clients {
		t.Run(name+"/routed", func(t *testing.T) {
			a := do(t, c, "GET", "https://"+h2Addr+"/api/x?q=1", "a.test", "")
			if a.proto != wantProto[name] || a.status != 200 || a.body != "ok:GET:" {
				t.Fatalf("got HTTP/%d %d %q, want HTTP/%d 200 \"ok:GET:\"", a.proto, a.status, a.body, wantProto[name])
			}
			for _, h := range []string{"X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Request-Id", "Server"} {
				if a.header.Get(h) == "" {
					t.Errorf("got no %s, want one", h)
				}
			}
			// A field the upstream repeats reaches the client repeated, in order.
			if got := strings.Join(a.header.Values("Set-Cookie"), "; "); got != "a=1; b=2" {
				t.Errorf("got Set-Cookie %q, want both of the upstream's: %q", got, "a=1; b=2")
			}
			if got := a.header.Get("Via"); got != "1.1 grapevine/9.9.9" {
				t.Errorf("got Via %q downstream, want the upstream's version: %q", got, "1.1 grapevine/9.9.9")
			}
			seen := up.last(t)
			checks := map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.test", "X-Forwarded-Port": h2Port,
				"X-Forwarded-Path": "/api/x", "X-Forwarded-Prefix": "/api", "X-Real-Ip": "127.0.0.1",
				"X-Forwarded-For": "127.0.0.1", "Via": wantVia[name], "X-Kong-Request-Id": a.header.Get("X-Kong-Request-Id"),
			}
			for h, want := range checks {
				if got := seen.Header.Get(h); got != want {
					t.Errorf("upstream got %s %q, want %q", h, got, want)
				}
			}
			if ua := seen.Header.Get("User-Agent"); !strings.HasPrefix(ua, "Go-http-client/") {
				t.Errorf("upstream got User-Agent %q, want the client's", ua)
			}
			if seen.URI != "/x?q=1" {
				t.Errorf("upstream got URI %q, want %q", seen.URI, "/x?q=1")
			}
		})
		t.Run(name+"/body", func(t *testing.T) {
			a := do(t, c, "POST", "https://"+h2Addr+"/api/p", "a.test", "hello")
			if a.status != 200 || a.body != "ok:POST:hello" || a.header.Get("X-Got-Length") != "5" {
				t.Fatalf("got %d %q (upstream Content-Length %q), want 200 \"ok:POST:hello\" (5)", a.status, a.body, a.header.Get("X-Got-Length"))
			}
		})
		t.Run(name+"/no route", func(t *testing.T) {
			a := do(t, c, "GET", "https://"+h2Addr+"/nothing", "a.test", "")
			var got struct {
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(a.body), &got); err != nil {
				t.Fatalf("body %q: %v", a.body, err)
			}
			if a.status != 404 || got.Message != msgNoRoute || got.RequestID != a.header.Get("X-Kong-Request-Id") ||
				a.header.Get("Content-Type") != "application/json; charset=utf-8" || a.header.Get("X-Kong-Response-Latency") == "" {
				t.Fatalf("got %d %q %v, want 404 with Kong's JSON and headers", a.status, a.body, a.header)
			}
		})
	}
	t.Run("h2/body of unknown length", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "https://"+h2Addr+"/api/p", io.NopCloser(strings.NewReader("abc")))
		req.Host = "a.test"
		resp, err := clients["h2"].Do(req)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok:POST:abc" {
			t.Fatalf("got %d %q, want 200 \"ok:POST:abc\"", resp.StatusCode, b)
		}
	})
	t.Run("h2 on an ssl listener without the flag", func(t *testing.T) {
		// Kong's template sets "http2 on" for the whole server block when
		// any proxy_listen entry has http2 (kong/templates/nginx_kong.lua),
		// and nginx's ALPN callback offers h2 on every ssl listener of a
		// block with it on (the condition Kong patches in
		// build/openresty/patches/ngx_lua-0.10.26_01-ssl-disable-h2-alpn.patch).
		a := do(t, h2Client("a.test"), "GET", "https://"+sslAddr+"/api/x", "a.test", "")
		if a.proto != 2 || a.status != 200 {
			t.Fatalf("got HTTP/%d %d, want HTTP/2 200", a.proto, a.status)
		}
		a = do(t, h1Client("a.test"), "GET", "https://"+sslAddr+"/api/x", "a.test", "")
		if a.status != 200 {
			t.Fatalf("got %d over HTTP/1.1, want 200", a.status)
		}
	})
}

// TestNoHTTP2WithoutTheFlag: with no http2 entry in proxy_listen, no
// listener offers h2 by ALPN and the h2c preface is refused.
func TestNoHTTP2WithoutTheFlag(t *testing.T) {
	up := newUpstream(t, nil)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	s := startProxyWith(t, snap, func(c *Config) { c.Listen = "127.0.0.1:0 ssl" })
	if resp, err := h2Client("a.test").Get("https://" + s.Addr().String() + "/x"); err == nil {
		resp.Body.Close()
		t.Fatalf("got HTTP/%d %d from an ssl listener with no http2 in proxy_listen, want a failed negotiation", resp.ProtoMajor, resp.StatusCode)
	}
	if a := do(t, h1Client("a.test"), "GET", "https://"+s.Addr().String()+"/x", "a.test", ""); a.status != 200 {
		t.Fatalf("got %d over HTTP/1.1, want 200", a.status)
	}
}

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP.
func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// TestH2CPriorKnowledge: with an http2 entry in proxy_listen, Kong's
// server block has "http2 on" (kong/templates/nginx_kong.lua) and nginx
// takes h2c with prior knowledge on its plain listeners too, beside
// HTTP/1.1; without one, the preface is no request it serves (505).
func TestH2CPriorKnowledge(t *testing.T) {
	up := newUpstream(t, nil)
	snap := mustSnapshot(t, []entity.Service{testService(t, "s1", up.addr())}, []entity.Route{testRoute(idA, "s1", paths("/"))})
	for _, tc := range []struct {
		listen string
		wantH2 bool
	}{
		{"127.0.0.1:0, 127.0.0.1:0 ssl http2", true},
		{"127.0.0.1:0, 127.0.0.1:0 ssl", false},
		// http2 on a plain listener: Kong's template drops the flag from
		// the listen line and sets "http2 on" for the block, which
		// nginx 1.25 serves as h2c by the preface beside HTTP/1.1 (not
		// h2c only, as "listen ... http2" without ssl did before 1.25.1).
		{"127.0.0.1:0 http2", true},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			s := startProxyWith(t, snap, func(c *Config) { c.Listen = tc.listen })
			base := "http://" + s.Addr().String()
			resp, err := h2cClient().Get(base + "/x")
			if !tc.wantH2 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got HTTP/%d %d over h2c, want no HTTP/2", resp.ProtoMajor, resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("h2c get: %v", err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 || up.last(t).Header.Get("X-Forwarded-Proto") != "http" {
				t.Fatalf("got HTTP/%d %d, X-Forwarded-Proto %q; want HTTP/2 200 http", resp.ProtoMajor, resp.StatusCode, up.last(t).Header.Get("X-Forwarded-Proto"))
			}
			if code, _, _ := send(t, s, "GET", "/x", nil); code != 200 {
				t.Fatalf("got %d over HTTP/1.1 on the same port, want 200", code)
			}
		})
	}
}
