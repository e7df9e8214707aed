package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// A request body goes upstream in one of two ways, as nginx's
// proxy_request_buffering decides (Kong sets it from the route's
// request_buffering; kong/templates/nginx_kong.lua):
//
//   - buffered (the default): the body is read whole before the request
//     goes upstream, in memory up to BodyBufferSize and beyond that in a
//     temporary file (nginx's client_body_buffer_size and
//     client_body_temp_path), and sent with its length, so a chunked upload
//     reaches the upstream with a Content-Length and a failed try can be
//     repeated on the next;
//   - streamed (request_buffering off): the request's head goes upstream at
//     once and the body follows as it arrives, with the client's framing;
//     once any of it is sent the request cannot be repeated.
//
// Either way the memory a body holds is bounded, whatever its size.

// requestBody is the body of one request on its way upstream. It lives in
// the request's reqState; reset makes it ready for the next request.
type requestBody struct {
	mem  []byte   // the body when it fits in memory
	file *os.File // the body when it did not (mem is then unused)
	size int64    // the buffered body's length, in mem or file

	// src is the client's body as it arrives (request_buffering off),
	// nil for a buffered body; srcLen is its declared length, -1 chunked.
	src     io.Reader
	srcLen  int64
	srcConn net.Conn // the client's connection, for read deadlines
	started bool     // some of src was read: the request cannot go again
	// read and limit bound reading src: the wait between two reads
	// (client_body_timeout) and the body's size (client_max_body_size,
	// negative for none).
	read  time.Duration
	limit int64
	// buf is the copy buffer for a file or a stream (st.body's memory).
	buf []byte
}

// reset closes what the previous request left and empties b.
func (b *requestBody) reset() {
	if b.file != nil {
		b.file.Close()
	}
	*b = requestBody{}
}

// framedLength returns the Content-Length to send upstream, or -1 for a
// chunked body.
func (b *requestBody) framedLength() int64 {
	if b.src != nil {
		return b.srcLen
	}
	return b.size
}

// replayable reports whether the body can be sent again, on another try.
func (b *requestBody) replayable() bool {
	return b == nil || b.src == nil || !b.started
}

// takesTime reports whether sending the body may take more than one
// write: it streams, or comes from a file.
func (b *requestBody) takesTime() bool {
	return b != nil && (b.src != nil || b.file != nil)
}

// inMemory returns the body when it is held in memory, else nil.
func (b *requestBody) inMemory() []byte {
	if b == nil || b.src != nil || b.file != nil {
		return nil
	}
	return b.mem
}

// clientBodyError is a streamed body failing on the client's side while it
// was being sent upstream: the client gets be's answer, not a 502.
type clientBodyError struct{ be *bodyError }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + strconv.Itoa(e.be.status) + " " + e.be.msg
}

// upstreamWriteError is the upstream failing while a body was being sent
// to it.
type upstreamWriteError struct{ err error }

func (e *upstreamWriteError) Error() string {
	return "sending the request body upstream: " + e.err.Error()
}
func (e *upstreamWriteError) Unwrap() error { return e.err }

// writeTo sends the body on w, allowing each write at most timeout (nginx's
// proxy_send_timeout is the wait between two writes).
func (b *requestBody) writeTo(w net.Conn, timeout time.Duration) error {
	switch {
	case b == nil:
		return nil
	case b.src != nil:
		return b.streamTo(w, timeout)
	case b.file != nil:
		return b.copyFile(w, timeout)
	case len(b.mem) > 0:
		_, err := w.Write(b.mem)
		return err
	}
	return nil
}

// copyFile sends the spooled body from its start, so a retry sends it whole
// again.
func (b *requestBody) copyFile(w net.Conn, timeout time.Duration) error {
	r := io.NewSectionReader(b.file, 0, b.size)
	for {
		n, err := r.Read(b.buf[:cap(b.buf)])
		if n > 0 {
			if werr := writeWithin(w, b.buf[:n], timeout); werr != nil {
				return &upstreamWriteError{werr}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read spooled request body: %w", err)
		}
	}
}

// streamTo passes the client's body on as it arrives: as is for a declared
// length, chunk by chunk for a chunked one.
func (b *requestBody) streamTo(w net.Conn, timeout time.Duration) error {
	// The head goes now, each piece as soon as it is read: what the
	// connection would keep for its next read (exchangeConn) is sent.
	if err := flushKept(w, timeout); err != nil {
		return &upstreamWriteError{err}
	}
	var sent int64
	for {
		if err := b.srcConn.SetReadDeadline(time.Now().Add(b.read)); err != nil {
			return &clientBodyError{errBodyBroken}
		}
		b.started = true
		room := cap(b.buf) - chunkHeadRoom - len(crlf)
		n, err := b.src.Read(b.buf[chunkHeadRoom : chunkHeadRoom+room])
		sent += int64(n)
		if b.limit >= 0 && sent > b.limit {
			return &clientBodyError{errBodyTooLarge}
		}
		if n > 0 {
			if werr := writeWithin(w, b.frame(n), timeout); werr != nil {
				return &upstreamWriteError{werr}
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			if b.srcLen < 0 {
				if werr := writeWithin(w, lastChunk, timeout); werr != nil {
					return &upstreamWriteError{werr}
				}
			}
			return nil
		case n > 0:
			if werr := flushKept(w, timeout); werr != nil {
				return &upstreamWriteError{werr}
			}
			if err != nil {
				return b.clientFailed(err)
			}
		case err != nil:
			return b.clientFailed(err)
		}
	}
}

// clientFailed is the answer to a read of the client's body failing.
func (b *requestBody) clientFailed(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &clientBodyError{errBodyTimeout}
	}
	return &clientBodyError{errBodyBroken}
}

// flushKept sends what w keeps for its next read, if it keeps anything.
func flushKept(w net.Conn, timeout time.Duration) error {
	e := exchangeOf(w)
	if e == nil || len(e.pending) == 0 {
		return nil
	}
	if err := e.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return e.flush()
}

// chunkHeadRoom is the space kept before a read's data for its chunk-size
// line: up to 16 hex digits and CRLF.
const chunkHeadRoom = 18

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// frame returns the n bytes just read into b.buf, as one chunk when the
// body is chunked.
func (b *requestBody) frame(n int) []byte {
	data := b.buf[chunkHeadRoom : chunkHeadRoom+n]
	if b.srcLen >= 0 {
		return data
	}
	var size [16]byte
	line := append(strconv.AppendInt(size[:0], int64(n), 16), crlf...)
	start := chunkHeadRoom - len(line)
	copy(b.buf[start:chunkHeadRoom], line)
	return append(b.buf[start:chunkHeadRoom+n], crlf...)
}

// writeWithin writes p to w, waiting at most timeout.
func writeWithin(w net.Conn, p []byte, timeout time.Duration) error {
	if err := w.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}
