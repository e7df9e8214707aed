package plugins

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// http-log (kong/plugins/http-log/handler.lua): the log phase serializes
// the exchange (Kong's kong.log.serialize record) and hands it to a
// background queue; the queue sends batches to http_endpoint (one JSON
// object when max_batch_size is 1, else a JSON array) and retries as
// Kong's queue does. The request never waits for the log server.
// custom_fields_by_lua runs in the background before the record is
// queued (luafields.go).

func init() { register("http-log", buildHTTPLog) }

type httpLogConfig struct {
	HTTPEndpoint string            `json:"http_endpoint"`
	Method       string            `json:"method"`
	ContentType  string            `json:"content_type"`
	Timeout      float64           `json:"timeout"`   // ms
	Keepalive    float64           `json:"keepalive"` // ms
	Headers      map[string]string `json:"headers"`
	Queue        queueConfig       `json:"queue"`
	CustomFields map[string]string `json:"custom_fields_by_lua"`
	RetryCount   *int              `json:"retry_count"`
	QueueSize    *int              `json:"queue_size"`
	FlushTimeout *float64          `json:"flush_timeout"`
}

func buildHTTPLog(env *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	var c httpLogConfig
	if err := decodeConfig(p, &c); err != nil {
		return hooks, err
	}
	custom, err := compileCustomFields(env, "http-log "+p.ID, c.CustomFields)
	if err != nil {
		return hooks, err
	}
	// Kong's deprecated names map onto the queue's (kong/tools/queue.lua
	// get_params): queue_size, flush_timeout.
	if c.QueueSize != nil && *c.QueueSize > 1 {
		c.Queue.MaxBatchSize = *c.QueueSize
	}
	if c.FlushTimeout != nil {
		c.Queue.MaxCoalescingDelay = *c.FlushTimeout
	}
	sender, err := newHTTPLogSender(&c)
	if err != nil {
		return hooks, err
	}
	// Kong's make_queue_name: plugins with the same settings share a queue.
	name := fmt.Sprintf("http-log:%s:%s:%s:%v:%v", c.HTTPEndpoint, c.Method, c.ContentType, c.Timeout, c.Keepalive)
	q := env.queue(name, c.Queue, sender.send)
	hooks[proxy.PhaseLog] = func(x pdk.Exchange) { custom.logEntry(x, q, "") }
	return hooks, nil
}

// httpLogSender posts batches to the log server.
type httpLogSender struct {
	conf     *httpLogConfig
	endpoint string // without user info
	auth     string // Basic from the URL's user info
	batch    bool
	client   *http.Client
}

func newHTTPLogSender(c *httpLogConfig) (*httpLogSender, error) {
	u, err := url.Parse(c.HTTPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("http_endpoint: %w", err)
	}
	s := &httpLogSender{conf: c, batch: c.Queue.MaxBatchSize > 1}
	if u.User != nil {
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.String()))
		u.User = nil
	}
	if u.Path == "" {
		u.Path = "/"
	}
	s.endpoint = u.String()
	timeout := time.Duration(c.Timeout) * time.Millisecond
	s.client = &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:     (&net.Dialer{Timeout: timeout}).DialContext,
		IdleConnTimeout: time.Duration(c.Keepalive) * time.Millisecond,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Kong's ssl_verify = false
	}}
	return s, nil
}

func (s *httpLogSender) send(ctx context.Context, batch [][]byte) error {
	body := batch[0]
	if s.batch {
		body = append(append([]byte{'['}, bytes.Join(batch, []byte{','})...), ']')
	}
	req, err := http.NewRequestWithContext(ctx, s.conf.Method, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range s.conf.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", s.conf.ContentType)
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("failed request to %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("request to %s returned status code %d and body %s", req.URL.Host, resp.StatusCode, text)
	}
	return nil
}
