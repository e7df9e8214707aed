package proxy

import (
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
)

// The request body arrives as a stream (fasthttp's StreamRequestBody): the
// first few KB come with the headers, the rest is read here. A client's
// declared Content-Length is checked against the limit but never
// allocated: the buffer grows with the bytes that actually arrive.

// streamPrefetch keeps fasthttp from refusing a body by its length
// itself; readBody and handleExpect apply MaxBodySize with Kong's answer.
const streamPrefetch = math.MaxInt32

// bodyReadChunk is how much one read of a body asks for.
const bodyReadChunk = 32 << 10

// maxPooledBody is the largest body buffer kept with a pooled reqState; a
// bigger one is dropped after its request so one large upload does not
// stay pinned in memory.
const maxPooledBody = 1 << 20

// bodyError is a request body that could not be read: the status and
// Kong's message to answer with, after which the connection is closed.
type bodyError struct {
	status int
	msg    string
}

var (
	errBodyTooLarge = &bodyError{fasthttp.StatusRequestEntityTooLarge, msgPayloadTooLarge}
	errBodyTimeout  = &bodyError{fasthttp.StatusRequestTimeout, msgRequestTimeout}
	errBodyBroken   = &bodyError{fasthttp.StatusBadRequest, msgBadRequest}
	// errBadHeaderName is not about the body, but is answered the same way.
	errBadHeaderName = &bodyError{fasthttp.StatusBadRequest, msgBadRequest}
)

// tooLarge reports whether a declared length is over the limit.
func (s *Server) tooLarge(contentLength int) bool {
	return s.cfg.MaxBodySize >= 0 && int64(contentLength) > s.cfg.MaxBodySize
}

// readBody returns the whole request body, read into st.body with
// ClientBodyTimeout between reads and at most MaxBodySize bytes.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, st *reqState) ([]byte, *bodyError) {
	// A declared length over the limit was refused before routing
	// (acceptable); a chunked body is counted as it arrives.
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return ctx.Request.Body(), nil
	}
	body := st.body[:0]
	conn := ctx.Conn()
	for {
		if len(body) == cap(body) {
			body = slices.Grow(body, bodyReadChunk)
		}
		if err := conn.SetReadDeadline(time.Now().Add(s.cfg.ClientBodyTimeout)); err != nil {
			return nil, errBodyBroken
		}
		n, err := stream.Read(body[len(body):min(cap(body), len(body)+bodyReadChunk)])
		body = body[:len(body)+n]
		if s.cfg.MaxBodySize >= 0 && int64(len(body)) > s.cfg.MaxBodySize {
			st.body = body
			return nil, errBodyTooLarge
		}
		switch {
		case errors.Is(err, io.EOF):
			st.body = body
			return body, nil
		case err != nil:
			st.body = body
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, errBodyTimeout
			}
			return nil, errBodyBroken
		}
	}
}

// respondBodyError answers a body that could not be read and closes the
// connection: what is left of the body is unread.
func (s *Server) respondBodyError(ctx *fasthttp.RequestCtx, st *reqState, be *bodyError) {
	s.respondNginxError(ctx, st, be.status, be.msg)
	ctx.SetConnectionClose()
	if e := s.log.Debug(); e.Enabled() {
		e.Int("status", be.status).Stringer("client", ctx.RemoteAddr()).Msg("proxy: request body refused")
	}
}

// handleExpect answers "Expect: 100-continue" before any body is sent: 413
// for a declared length over the limit (nginx refuses without sending 100
// Continue), 100 Continue otherwise.
func (s *Server) handleExpect(ctx *fasthttp.RequestCtx) int {
	if !s.tooLarge(ctx.Request.Header.ContentLength()) {
		return fasthttp.StatusContinue
	}
	st := statePool.Get().(*reqState)
	defer s.releaseState(st)
	st.newRequestID()
	s.respondNginxError(ctx, st, fasthttp.StatusRequestEntityTooLarge, msgPayloadTooLarge)
	return fasthttp.StatusRequestEntityTooLarge
}

// releaseState returns st to the pool, without a body buffer too large to
// keep.
func (s *Server) releaseState(st *reqState) {
	if cap(st.body) > maxPooledBody {
		st.body = nil
	}
	statePool.Put(st)
}
