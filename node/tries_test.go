package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A balanced request whose first try meets a dead target and whose retry
// is answered is logged with both tries (file-log, through a real node
// and its Admin API): the first with the dead address, state "failed"
// and code 502, the second with the live address and neither; the client
// sees X-Kong-Upstream-Status 200. Reference: kong/pdk/log.lua serialize
// (tries = ctx.balancer_data.tries), kong/init.lua balancer phase
// (balancer_start, balancer_latency, ip, port; the previous try's state
// and code from get_last_failure). Addresses 127.0.44.x.
func TestLogRecordCarriesTries(t *testing.T) {
	dead := deadAddress(t, "127.0.44.1")
	good := startCountingTarget(t, "127.0.44.2")
	cfg := testConfig(t, bootstrappedDatabase(t))
	cfg.Headers = append(cfg.Headers, "x-kong-upstream-status") // not among Kong's default headers
	n := startNode(t, cfg)
	logPath := filepath.Join(t.TempDir(), "proxy.log")
	mustAdmin(t, n, 201, "POST", "/upstreams", `{"name":"tries.test"}`)
	mustAdmin(t, n, 201, "POST", "/upstreams/tries.test/targets", `{"target":"`+dead+`"}`)
	mustAdmin(t, n, 201, "POST", "/upstreams/tries.test/targets", `{"target":"`+good.Listener.Addr().String()+`"}`)
	mustAdmin(t, n, 201, "POST", "/services", `{"name":"s","host":"tries.test","retries":3}`)
	mustAdmin(t, n, 201, "POST", "/services/s/routes", `{"paths":["/t"]}`)
	mustAdmin(t, n, 201, "POST", "/services/s/plugins", `{"name":"file-log","config":{"path":"`+logPath+`"}}`)

	for range 10 { // round-robin over two targets: some first tries are the dead one
		resp, err := http.Get("http://" + n.ProxyAddr().String() + "/t")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Kong-Upstream-Status") != "200" {
			t.Fatalf("got %d, X-Kong-Upstream-Status %q; want 200 and 200", resp.StatusCode, resp.Header.Get("X-Kong-Upstream-Status"))
		}
	}
	deadIP, deadPort := ipPort(t, dead)
	goodIP, goodPort := ipPort(t, good.Listener.Addr().String())
	eventually(t, 10*time.Second, func() error {
		records, err := readTries(logPath)
		if err != nil {
			return err
		}
		if len(records) != 10 {
			return fmt.Errorf("%d records logged, want 10", len(records))
		}
		retried := 0
		for _, tries := range records {
			last := tries[len(tries)-1]
			if last.IP != goodIP || last.Port != goodPort || last.State != "" || last.Code != 0 {
				return fmt.Errorf("last try: got %+v, want %s:%d without state", last, goodIP, goodPort)
			}
			if len(tries) == 2 {
				retried++
				if first := tries[0]; first.IP != deadIP || first.Port != deadPort || first.State != "failed" || first.Code != 502 || first.Start == 0 {
					return fmt.Errorf("first try: got %+v, want %s:%d failed with 502", first, deadIP, deadPort)
				}
			}
		}
		if retried == 0 {
			return fmt.Errorf("no request met the dead target first: %v", records)
		}
		return nil
	})
}

type loggedTry struct {
	Start   int64  `json:"balancer_start"`
	Latency *int64 `json:"balancer_latency"`
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	State   string `json:"state"`
	Code    int    `json:"code"`
}

// readTries reads the tries of each record of a file-log file.
func readTries(path string) ([][]loggedTry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]loggedTry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Tries []loggedTry `json:"tries"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("record %q: %w", sc.Text(), err)
		}
		if len(rec.Tries) == 0 || rec.Tries[0].Latency == nil {
			return nil, fmt.Errorf("record without tries or balancer_latency: %s", sc.Text())
		}
		out = append(out, rec.Tries)
	}
	return out, sc.Err()
}

// deadAddress is an address on ip where nothing listens.
func deadAddress(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func ipPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}
