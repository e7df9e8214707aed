package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
)

// The request body arrives as a stream (fasthttp's StreamRequestBody) and
// is read here, after routing. A client's declared Content-Length is
// checked against the limit but never allocated: the buffer grows with the
// bytes that actually arrive.

// streamPrefetch is fasthttp's MaxRequestBodySize. fasthttp reads up to
// that much of a body (at most 8 KiB) before it calls the handler, and
// streams a longer one; one byte means the handler runs as soon as the
// body starts, so an unbuffered route passes on even a small body's
// first piece as it arrives, and client_body_timeout covers all of the
// body. fasthttp never refuses a body by its length: readBody and
// handleExpect apply MaxBodySize with Kong's answer.
const streamPrefetch = 1

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

// readBody reads the whole request body into st.reqBody (see reqbody.go):
// with ClientBodyTimeout between reads, at most MaxBodySize bytes, in
// memory up to BodyBufferSize and beyond that in a temporary file.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, st *reqState) *bodyError {
	b := &st.reqBody
	// A declared length over the limit was refused before routing
	// (acceptable); a chunked body is counted as it arrives.
	stream := ctx.RequestBodyStream()
	if stream == nil {
		b.mem = ctx.Request.Body()
		b.size = int64(len(b.mem))
		return nil
	}
	body := st.body[:0]
	defer func() { st.body = body[:0] }()
	conn := ctx.Conn()
	for {
		if len(body) == cap(body) {
			body = slices.Grow(body, bodyReadChunk)
		}
		if err := conn.SetReadDeadline(time.Now().Add(s.cfg.ClientBodyTimeout)); err != nil {
			return errBodyBroken
		}
		n, err := stream.Read(body[len(body):min(cap(body), len(body)+bodyReadChunk)])
		body = body[:len(body)+n]
		if s.cfg.MaxBodySize >= 0 && b.size+int64(len(body)) > s.cfg.MaxBodySize {
			return errBodyTooLarge
		}
		done := errors.Is(err, io.EOF)
		if err != nil && !done {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return errBodyTimeout
			}
			return errBodyBroken
		}
		if b.file != nil || len(body) > s.cfg.BodyBufferSize {
			if serr := s.spill(b, body); serr != nil {
				return serr
			}
			body = body[:0]
		}
		if done {
			if b.file == nil {
				b.mem, b.size = body, int64(len(body))
			}
			b.buf = body[:0] // the copy buffer for a spooled body
			return nil
		}
	}
}

// errBodySpool is a body that could not be written to its temporary file;
// nginx answers 500 when client_body_temp_path fails.
var errBodySpool = &bodyError{fasthttp.StatusInternalServerError, msgUnexpected}

// spill appends part of a body to its temporary file, creating the file
// first. The file is unlinked as soon as it exists, so nothing is left on
// disk whatever happens to the node.
func (s *Server) spill(b *requestBody, part []byte) *bodyError {
	if b.file == nil {
		f, err := os.CreateTemp(s.cfg.BodyTempDir, "grapevine-body-")
		if err != nil {
			s.log.Error().Err(err).Msg("proxy: cannot buffer a request body to a temporary file")
			return errBodySpool
		}
		if err := os.Remove(f.Name()); err != nil {
			s.log.Warn().Err(err).Str("file", f.Name()).Msg("proxy: cannot unlink a request body's temporary file")
		}
		b.file = f
	}
	if _, err := b.file.Write(part); err != nil {
		s.log.Error().Err(err).Msg("proxy: cannot buffer a request body to a temporary file")
		return errBodySpool
	}
	b.size += int64(len(part))
	return nil
}

// streamBody sets st.reqBody to pass the client's body on as it arrives
// (request_buffering off). A body that came whole with the request's
// header is sent as it is.
func (s *Server) streamBody(ctx *fasthttp.RequestCtx, st *reqState) {
	b := &st.reqBody
	stream := ctx.RequestBodyStream()
	if stream == nil {
		b.mem = ctx.Request.Body()
		b.size = int64(len(b.mem))
		return
	}
	b.src, b.srcConn = stream, ctx.Conn()
	b.srcLen = int64(ctx.Request.Header.ContentLength())
	if b.srcLen < 0 {
		b.srcLen = -1
	}
	b.read, b.limit = s.cfg.ClientBodyTimeout, s.cfg.MaxBodySize
	st.body = slices.Grow(st.body[:0], bodyReadChunk+chunkHeadRoom+len(crlf))
	b.buf = st.body
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
	st.reqBody.reset()
	st.h2 = false // handleParseError and handleExpect reuse st without handle's set-up
	if cap(st.body) > maxPooledBody {
		st.body = nil
	}
	statePool.Put(st)
}
