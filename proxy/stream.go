package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/valyala/fasthttp"
)

// An answer's body streams to the client instead of being held when its
// route has response_buffering off (each chunk reaches the client as it
// arrives: server-sent events) or when it declares more than the proxy
// buffers (a large download passes with bounded memory, as nginx passes
// what its buffers cannot hold). The stream owns the upstream connection
// until fasthttp has written the body and closed the stream: a body read
// to its end leaves the connection reusable, anything else closes it.

// errStreaming tells roundTrip that the answer's body streams from the
// connection, which it must neither pool nor close.
var errStreaming = errors.New("upstream answer streams")

// streamChunk is the most one read of a streamed body asks for.
const streamChunk = 32 << 10

// answerStream is a streamed answer body: resp's body stream.
type answerStream struct {
	held     []byte // what was read before the answer turned to streaming
	c        *upstreamClient
	cc       *upstreamConn
	br       *bufio.Reader
	framing  int // Content-Length, -1 chunked, -2 until the upstream closes
	left     int // bytes left of the body, or of the current chunk
	reusable bool
	done     bool // the body ended where its framing says
	closed   bool
}

// streamBody sets resp's body to stream from cc.
func (c *upstreamClient) streamBody(cc *upstreamConn, br *bufio.Reader, resp *fasthttp.Response) {
	n := resp.Header.ContentLength()
	s := &answerStream{c: c, cc: cc, br: br, framing: n, left: max(n, 0),
		reusable: !resp.ConnectionClose() && n != -2}
	if n == -1 {
		s.left = -1 // no chunk read yet
	}
	resp.SetBodyStream(s, n)
}

// streamRest sets resp's body to stream from cc after what over holds: an
// answer of unknown length that outgrew the buffer.
func (c *upstreamClient) streamRest(cc *upstreamConn, br *bufio.Reader, resp *fasthttp.Response, over *bufferOverflow) {
	n := resp.Header.ContentLength()
	s := &answerStream{held: over.held, c: c, cc: cc, br: br, framing: n, left: over.chunkLeft,
		reusable: !resp.ConnectionClose() && n != -2}
	if n == -1 && over.chunkLeft == 0 {
		s.left = -1
	}
	resp.SetBodyStream(s, n)
}

func (s *answerStream) Read(p []byte) (int, error) {
	if len(s.held) > 0 && !s.closed {
		n := copy(p, s.held)
		s.held = s.held[n:]
		return n, nil
	}
	if s.done || s.closed {
		return 0, io.EOF
	}
	// The service's read_timeout applies between reads, as nginx's
	// proxy_read_timeout does.
	if err := s.cc.SetReadDeadline(time.Now().Add(s.c.key.read)); err != nil {
		return 0, err
	}
	p = p[:min(len(p), streamChunk)]
	switch s.framing {
	case -1:
		return s.readChunked(p)
	case -2:
		n, err := s.br.Read(p)
		if err == io.EOF {
			s.done = true
		}
		return n, err
	}
	return s.readFixed(p)
}

func (s *answerStream) readFixed(p []byte) (int, error) {
	if s.left == 0 {
		s.done = true
		return 0, io.EOF
	}
	n, err := s.br.Read(p[:min(len(p), s.left)])
	s.left -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && s.left == 0 {
		s.done = true
	}
	return n, err
}

// readChunked passes on the data of a chunked body (RFC 9112 §7.1); the
// client gets it chunked again by fasthttp, chunk by chunk.
func (s *answerStream) readChunked(p []byte) (int, error) {
	if s.left <= 0 {
		if s.left == 0 {
			if err := readCRLF(s.br); err != nil { // the end of the last chunk
				return 0, err
			}
		}
		size, err := readChunkSize(s.br, math.MaxInt32)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := skipTrailer(s.br); err != nil {
				return 0, err
			}
			s.done = true
			return 0, io.EOF
		}
		s.left = size
	}
	n, err := s.br.Read(p[:min(len(p), s.left)])
	s.left -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// skipTrailer reads the trailer section after the last chunk up to its
// empty line; trailers are not passed on.
func skipTrailer(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read trailer: %w", err)
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// Close ends the stream: fasthttp calls it once the body is written, or
// given up on (the client went away). Only a body read to its end with
// nothing more on the connection lets the connection carry another
// exchange.
func (s *answerStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	clean := s.done && s.reusable && s.br.Buffered() == 0
	releaseReader(s.br)
	if !clean {
		return s.cc.Close()
	}
	s.c.release(s.cc, time.Now())
	return nil
}
