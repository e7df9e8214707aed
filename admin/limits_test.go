package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startedEnv runs the Admin API the way a node does: Server.Start on a
// loopback listener, with cfg's limits.
func startedEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	st := bootstrappedStore(t)
	ap := &recordingApplier{}
	cfg.Listen = "127.0.0.1:0"
	cfg.Version = "3.9.1"
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	srv := New(cfg, st, ap)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return &testEnv{t: t, url: "http://" + srv.Addr().String(), st: st, applier: ap, srv: srv}
}

// form sends an urlencoded body.
func (e *testEnv) form(method, path, body string) response {
	e.t.Helper()
	return e.do(method, path, "application/x-www-form-urlencoded", body)
}

// rawRequest writes head (and body) on a fresh connection as a hostile
// client would, and returns the status line and the body of the answer.
func rawRequest(t *testing.T, addr, head string, body io.Reader) (string, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("write head: %v", err)
	}
	if body != nil {
		// Written beside the read: the server may answer and stop reading
		// before the body is all sent.
		go io.Copy(conn, body)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.Status, string(b)
}

// TestNestedFormKey: a form key of two million levels used to overflow the
// stack of the form decoder (entity.putForm / finishForm) and kill the
// process. Kong has no rule of its own for deep form keys (its decoder,
// kong/api/arguments_decoder.lua, nests whatever it is given); its JSON
// decoder (lua-cjson, decode_max_depth 1000) refuses deeper JSON, and
// kong/api/api_helpers.lua answers that with 400 "Cannot parse JSON body".
// Grapevine caps both at 1000 levels.
func TestNestedFormKey(t *testing.T) {
	e := startedEnv(t, Config{})
	deep := func(levels int) string { return "a" + strings.Repeat(".b", levels) }
	tests := []struct {
		name, ct, body string
		want           string
	}{
		{"form 2M levels", "application/x-www-form-urlencoded", "name=x&host=h&" + deep(2_000_000) + "=1",
			`{"message":"Cannot parse form body: a key nests deeper than 1000 levels"}`},
		{"form 1001 levels", "application/x-www-form-urlencoded", "name=x&host=h&" + deep(1001) + "=1",
			`{"message":"Cannot parse form body: a key nests deeper than 1000 levels"}`},
		{"form brackets", "application/x-www-form-urlencoded", "name=x&host=h&a" + strings.Repeat("[b]", 5000) + "=1",
			`{"message":"Cannot parse form body: a key nests deeper than 1000 levels"}`},
		{"json 1001 levels", "application/json", `{"name":"x","host":"h","a":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + "}",
			`{"message":"Cannot parse JSON body"}`},
		// kong/api/arguments.lua: max_post_args = 1000, then 400 "Too many arguments".
		{"form 1001 arguments", "application/x-www-form-urlencoded", strings.Repeat("tags=a&", 1001) + "host=h",
			`{"message":"Too many arguments"}`},
		{"json 1M levels", "application/json", `{"a":` + strings.Repeat(`{"b":`, 1_000_000),
			`{"message":"Cannot parse JSON body"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do("POST", "/services", tc.ct, tc.body)
			mustStatus(t, res, http.StatusBadRequest)
			jsonEqual(t, res.raw, tc.want)
		})
	}
	t.Run("within the cap is a schema answer", func(t *testing.T) {
		res := e.form("POST", "/services", "name=x&host=h&"+deep(999)+"=1")
		mustStatus(t, res, http.StatusBadRequest)
		jsonEqual(t, res.raw, `{"code":2,"name":"schema violation","message":"schema violation (a: unknown field)","fields":{"a":"unknown field"}}`)
	})
	t.Run("still serving", func(t *testing.T) {
		mustStatus(t, e.form("POST", "/services", "name=x&host=h"), http.StatusCreated)
		list := e.json("GET", "/services", "")
		if n := len(list.body["data"].([]any)); n != 1 {
			t.Errorf("got %d services, want 1 (nothing stored by the refused bodies)", n)
		}
	})
}

// TestBodyLimit: bodies over 8 MiB used to be cut short silently and stored
// (a form ending in &retries=3 was created with retries 5). Kong's Admin API
// refuses bodies over nginx_admin_client_max_body_size (10m by default,
// kong/templates/kong_defaults.lua) with 413 before reading them, and its
// text for 413 is "Payload too large" (kong/error_handlers.lua).
func TestBodyLimit(t *testing.T) {
	const mib = 1 << 20
	// bigService is a form body of about size bytes whose last argument
	// is retries=3; the path carries the bulk.
	bigService := func(name string, size int) string {
		head := "name=" + name + "&host=h.test&path=/"
		tail := "&retries=3"
		return head + strings.Repeat("p", size-len(head)-len(tail)) + tail
	}
	tooLarge := `{"message":"Payload too large"}`

	t.Run("9 MiB under the default 10m is stored whole", func(t *testing.T) {
		// Storing 9 MiB under -race on a busy machine can take longer
		// than the default 5 s store timeout.
		e := startedEnv(t, Config{DBTimeout: time.Minute})
		body := bigService("big", 9*mib)
		res := e.form("POST", "/services", body)
		mustStatus(t, res, http.StatusCreated)
		if res.body["retries"] != 3.0 {
			t.Errorf("got retries %v, want 3 (the body's last argument)", res.body["retries"])
		}
		if got, want := len(res.body["path"].(string)), len(body)-len("name=big&host=h.test&path=&retries=3"); got != want {
			t.Errorf("got a path of %d bytes, want %d", got, want)
		}
	})
	e := startedEnv(t, Config{MaxBodySize: mib})
	addr := strings.TrimPrefix(e.url, "http://")
	tests := []struct {
		name, head string
		body       io.Reader
	}{
		{"declared length over the limit, body never sent",
			"POST /services HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1073741824\r\n\r\n", nil},
		{"100-continue is not sent before refusing",
			"POST /services HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 1048577\r\n\r\n", nil},
		{"chunked body over the limit",
			"POST /services HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
			strings.NewReader(chunked(bigService("chunky", 2*mib)))},
		{"put over the limit",
			"PUT /services/put1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048577\r\n\r\n",
			strings.NewReader(bigService("put1", mib+1))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawRequest(t, addr, tc.head, tc.body)
			if status != "413 Request Entity Too Large" {
				t.Fatalf("got status %q, want 413", status)
			}
			jsonEqual(t, body, tooLarge)
		})
	}
	t.Run("exactly the limit is accepted", func(t *testing.T) {
		mustStatus(t, e.form("POST", "/services", bigService("edge", mib)), http.StatusCreated)
	})
	t.Run("nothing refused was stored", func(t *testing.T) {
		list := e.json("GET", "/services", "")
		data := list.body["data"].([]any)
		if len(data) != 1 || data[0].(map[string]any)["name"] != "edge" {
			t.Errorf("got %d services, want only edge", len(data))
		}
	})
}

// chunked frames body as HTTP/1.1 chunks of 64 KiB.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	return b.String() + "0\r\n\r\n"
}

// TestConcurrentPatchesAllSurvive: five PATCHes of one service, each
// setting a different field, used to read the row, merge and write it back
// without a lock, so 3-4 of the 5 changes were lost every round. Kong's
// PATCH (kong/api/endpoints.lua update_entity → kong/db/dao/init.lua
// update) merges into the row as stored; here the merge happens under
// SELECT … FOR UPDATE in the writing transaction.
func TestConcurrentPatchesAllSurvive(t *testing.T) {
	e := startedEnv(t, Config{})
	e.mustCreate("/services", `{"name":"p","host":"p.test"}`)
	fields := []string{"retries", "connect_timeout", "write_timeout", "read_timeout", "port"}
	const rounds = 8
	for round := 1; round <= rounds; round++ {
		var wg sync.WaitGroup
		errs := make(chan string, len(fields))
		for _, f := range fields {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := http.DefaultClient.Do(mustRequest(t, "PATCH", e.url+"/services/p", fmt.Sprintf(`{%q:%d}`, f, round)))
				if err != nil {
					errs <- err.Error()
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					errs <- fmt.Sprintf("PATCH %s: got status %d, want 200", f, res.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Fatal(msg)
		}
		got := e.json("GET", "/services/p", "")
		for _, f := range fields {
			if got.body[f] != float64(round) {
				t.Fatalf("round %d: got %s = %v, want %d (a concurrent PATCH was lost)", round, f, got.body[f], round)
			}
		}
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestConcurrentPutsUpsert: PUT is Kong's upsert (kong/api/endpoints.lua
// put_entity_endpoint → dao:upsert_by_<endpoint key>); twenty parallel PUTs of
// a name that does not exist yet used to answer 12x 200 and 8x 409. Every
// one must answer 200, and one row exist, for each kind with an endpoint key.
func TestConcurrentPutsUpsert(t *testing.T) {
	e := startedEnv(t, Config{})
	svc := e.mustCreate("/services", `{"name":"parent","host":"p.test"}`)
	tests := []struct {
		name, path, body, list string
	}{
		{"service", "/services/race1", `{"host":"race.test"}`, "/services?tags=race"},
		{"route", "/routes/race2", `{"paths":["/race2"]}`, "/routes?tags=race"},
		{"nested route", "/services/parent/routes/race3", `{"paths":["/race3"]}`, "/services/" + svc["id"].(string) + "/routes"},
	}
	const parallel = 20
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.TrimSuffix(tc.body, "}") + `,"tags":["race"]}`
			var wg sync.WaitGroup
			statuses := make(chan int, parallel)
			for range parallel {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := http.DefaultClient.Do(mustRequest(t, "PUT", e.url+tc.path, body))
					if err != nil {
						statuses <- 0
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					statuses <- res.StatusCode
				}()
			}
			wg.Wait()
			close(statuses)
			count := map[int]int{}
			for s := range statuses {
				count[s]++
			}
			if count[http.StatusOK] != parallel {
				t.Errorf("got statuses %v, want %d x 200", count, parallel)
			}
			list := e.json("GET", tc.list, "")
			n := 0
			for _, d := range list.body["data"].([]any) {
				if strings.HasPrefix(d.(map[string]any)["name"].(string), "race") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("got %d rows, want 1", n)
			}
			e.json("DELETE", tc.path, "")
		})
	}
}
