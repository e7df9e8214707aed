package plugins

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
)

// The tests run plugins in a real proxy.Server on loopback in front of a
// real upstream (httptest), configured as the node configures it: plugin
// entities validated by their Kong schema (defaults filled), then
// compiled.

const (
	serviceID = "5f1e4a0c-0000-4000-8000-000000000001"
	routeID   = "5f1e4a0c-0000-4000-8000-000000000002"
	route2ID  = "5f1e4a0c-0000-4000-8000-000000000003"
	// route3ID's path is a regex with captures.
	route3ID = "5f1e4a0c-0000-4000-8000-000000000004"
)

// seenRequest is what the upstream received.
type seenRequest struct {
	Method, URI string
	Header      http.Header
	Body        string
}

type harness struct {
	t       *testing.T
	env     *Env
	srv     *proxy.Server
	up      *httptest.Server
	plugins []proxy.PluginInstance
	answer  http.HandlerFunc // the upstream's answer; nil: 200 "ok"

	mu   sync.Mutex
	seen []seenRequest
}

// newHarness starts an upstream and a proxy with one service and three
// routes: /r (routeID), /r2 (route2ID) and the regex
// /cap/(?<user>[a-z]+)/(\d+) (route3ID).
func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, "127.0.0.1:0")
}

// newHarnessOn is newHarness with the proxy on the given proxy_listen.
func newHarnessOn(t *testing.T, listen string) *harness {
	t.Helper()
	h := &harness{t: t, env: &Env{Index: NewIndex()}}
	h.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.seen = append(h.seen, seenRequest{r.Method, r.RequestURI, r.Header.Clone(), string(body)})
		answer := h.answer
		h.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(h.up.Close)
	cfg := proxy.DefaultConfig()
	cfg.Listen = listen
	cfg.Version = "9.9.9"
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	h.srv = proxy.New(cfg)
	if err := h.srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	h.swap()
	return h
}

// plugin adds a plugin entity (JSON as sent to the Admin API, scoped by
// its route/service/consumer fields) and swaps in the new snapshot.
func (h *harness) plugin(doc string) {
	h.t.Helper()
	var input map[string]any
	if err := json.Unmarshal([]byte(doc), &input); err != nil {
		h.t.Fatalf("plugin %s: %v", doc, err)
	}
	if input["id"] == nil {
		input["id"] = "5f1e4a0c-0000-4000-8000-1000000000" + strconv.Itoa(10+len(h.plugins))
	}
	full, verr := entity.Plugins.Validate(input)
	if verr != nil {
		h.t.Fatalf("plugin %s: %v", doc, verr)
	}
	raw, _ := json.Marshal(full)
	var p entity.Plugin
	if err := json.Unmarshal(raw, &p); err != nil {
		h.t.Fatalf("plugin %s: %v", doc, err)
	}
	inst, err := Compile(h.env, &p)
	if err != nil {
		h.t.Fatalf("compile %s: %v", doc, err)
	}
	h.plugins = append(h.plugins, *inst)
	h.swap()
}

func (h *harness) swap() {
	host, portText, _ := net.SplitHostPort(h.up.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	svc := entity.Service{ID: serviceID, Protocol: "http", Host: host, Port: port, Retries: 5,
		ConnectTimeout: 60000, ReadTimeout: 60000, WriteTimeout: 60000, Enabled: true}
	route := func(id, path string) entity.Route {
		return entity.Route{ID: id, Protocols: []string{"http", "https"}, Paths: []string{path},
			HTTPSRedirectStatusCode: 426, StripPath: true, PathHandling: "v0",
			RequestBuffering: true, ResponseBuffering: true, Service: &entity.ForeignKey{ID: serviceID}}
	}
	snap, warnings := proxy.NewSnapshot(proxy.SnapshotInput{
		Services: []entity.Service{svc},
		Routes: []entity.Route{route(routeID, "/r"), route(route2ID, "/r2"),
			route(route3ID, `~/cap/(?<user>[a-z]+)/(\d+)$`)},
		Plugins: h.plugins,
	})
	if len(warnings) > 0 {
		h.t.Fatalf("snapshot: %v", warnings)
	}
	h.srv.Swap(snap)
}

// consumer files a consumer in the index.
func (h *harness) consumer(id, username, customID string) {
	c := entity.Consumer{ID: id}
	if username != "" {
		c.Username = &username
	}
	if customID != "" {
		c.CustomID = &customID
	}
	h.env.Index.Put(c)
}

func cred(id, consumerID string) entity.Credential {
	return entity.Credential{ID: id, Consumer: &entity.ForeignKey{ID: consumerID}}
}

// response is what the client got.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request through the proxy; headers are "Name: value".
func (h *harness) do(method, target, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+h.srv.Addr().String()+target, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, hd := range headers {
		k, v, _ := strings.Cut(hd, ": ")
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// last is the last request the upstream received; ok false if none since
// the last call.
func (h *harness) last() (seenRequest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return seenRequest{}, false
	}
	r := h.seen[len(h.seen)-1]
	h.seen = nil
	return r, true
}

// kongMessage is the message of Kong's JSON error or exit body.
func kongMessage(body string) string {
	var m struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal([]byte(body), &m)
	return m.Message
}
