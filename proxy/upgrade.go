package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// WebSocket upgrades pass as Kong passes them. Kong's access phase
// (kong/runloop/handler.lua, "Keep-Alive and WebSocket Protocol Upgrade
// Headers") sends "Connection: keep-alive, Upgrade" and "Upgrade:
// websocket" upstream when, and only when, the client's Upgrade header is
// "websocket" in any case; nginx_kong.lua's proxy_set_header lines send
// every other Upgrade nowhere. When the upstream answers 101 Switching
// Protocols, nginx joins the two connections (ngx_http_upstream_upgrade);
// here the client's connection is hijacked from fasthttp and joined to a
// connection opened for the request alone, never pooled (tunnel.go). Any
// other answer goes to the client as a normal one.

var (
	websocketToken = []byte("websocket")
	// upgradeHeaders are Kong's upstream headers for a WebSocket request.
	upgradeHeaders = []byte("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n")
)

// forwardUpgrade sends a WebSocket upgrade request (st.head and body)
// upstream on a new connection. On 101 it leaves the answer in
// ctx.Response and hands the client's connection to a tunnel once the
// handler returns; any other answer is proxied as forward does.
func (s *Server) forwardUpgrade(ctx *fasthttp.RequestCtx, st *reqState, up upstreamCall, body *requestBody) {
	svc := up.route.svc
	resp := &ctx.Response
	sent := time.Now()
	cc, br, err := openUpgradeWithRetries(up.client, sent, st.head, body, ctx.Request.Header.IsHead(), resp, svc.retries, ctx.Method())
	received := time.Now()
	if err != nil {
		s.respondUpstreamError(ctx, st, svc, err)
		return
	}
	// Kong drops the upstream's Upgrade only when it differs from the one
	// asked for (handler.lua's header_filter), so "websocket" stays.
	upgrade := string(resp.Header.Peek("Upgrade"))
	s.setProxiedResponseHeaders(ctx, st, sent, received)
	if bytes.EqualFold([]byte(upgrade), websocketToken) {
		resp.Header.Set("Upgrade", upgrade)
	}
	if e := s.log.Debug(); e.Enabled() {
		e.Bytes("method", ctx.Method()).Bytes("upstream_uri", st.uri).Str("route", up.route.id).
			Int("status", resp.StatusCode()).Dur("upstream_latency", received.Sub(sent)).
			Bytes("request_id", st.id[:]).Bool("upgraded", cc != nil).Msg("proxy access")
	}
	if cc == nil {
		return
	}
	t := &tunnel{upstream: cc, pending: br, idle: svc.read, write: svc.write, log: s.log}
	if !s.tunnels.add(t) {
		t.close()
		s.respondNginxError(ctx, st, fasthttp.StatusBadGateway, msgBadResponse)
		return
	}
	// Written by the tunnel itself, so that fasthttp's conditions for
	// skipping a hijack (Connection: close, shutting down) never leave the
	// upstream connection open with no one to close it.
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { s.runTunnel(ctx, t, c) })
}

// openUpgradeWithRetries is doWithRetries for an upgrade: each try on a
// new connection.
func openUpgradeWithRetries(c *upstreamClient, now time.Time, head []byte, body *requestBody, isHead bool, resp *fasthttp.Response, retries int, method []byte) (*upstreamConn, *bufio.Reader, error) {
	for try := 0; ; try++ {
		cc, br, err := c.openUpgrade(now, head, body, isHead, resp)
		if err == nil || try >= retries || !retryable(err, method) || !body.replayable() {
			return cc, br, err
		}
		now = time.Now()
	}
}

// openUpgrade sends an upgrade request on a new connection and reads the
// answer into resp. On 101 it returns the connection, switched to tunnel
// use, and the reader holding whatever the upstream sent after the
// answer's header; on any other answer (read whole, body included unless
// isHead) the connection is closed and cc is nil.
func (c *upstreamClient) openUpgrade(now time.Time, head []byte, body *requestBody, isHead bool, resp *fasthttp.Response) (cc *upstreamConn, br *bufio.Reader, err error) {
	cc, err = c.dialConn()
	if err != nil {
		return nil, nil, err
	}
	if err := cc.SetWriteDeadline(now.Add(c.key.write)); err != nil {
		cc.Close()
		return nil, nil, err
	}
	if err := cc.SetReadDeadline(now.Add(c.key.read)); err != nil {
		cc.Close()
		return nil, nil, err
	}
	if _, err := cc.Write(head); err != nil {
		cc.Close()
		return nil, nil, err
	}
	if err := body.writeTo(cc, c.key.write); err != nil {
		cc.Close()
		return nil, nil, err
	}
	br = acquireReader(cc)
	if _, err := readWhole(br, resp, isHead, c.maxBody); err != nil || resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		releaseReader(br)
		cc.Close()
		return nil, nil, err
	}
	if e := exchangeOf(cc.Conn); e != nil {
		e.tunnel = true
	}
	return cc, br, nil
}

// exchangeOf finds the exchangeConn under the layers tcpDialer puts on an
// upstream connection; nil when there is none.
func exchangeOf(c net.Conn) *exchangeConn {
	for {
		switch v := c.(type) {
		case *exchangeConn:
			return v
		case *upstreamConn:
			c = v.Conn
		case *coarseConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
