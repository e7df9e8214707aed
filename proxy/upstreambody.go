package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/valyala/fasthttp"
)

// Until bodies stream (a later change), the proxy holds an upstream's
// whole answer before sending it on, so what it holds must be bounded:
// fasthttp's own body reading has no limit and allocates the length an
// answer declares before any of it arrives. The body is read here instead,
// growing its buffer only as bytes arrive.

// maxResponseBody caps the buffered body of one upstream answer. Kong has
// no such limit (nginx spills large answers to temporary files, up to
// proxy_max_temp_file_size, 1 GiB by default, and then passes the rest
// through as the client reads); 64 MiB keeps a gateway's memory bounded
// while serving all but bulk downloads.
const maxResponseBody = 64 << 20

// errResponseTooLarge is an answer whose body is longer than the proxy
// buffers; the client gets 502 and the connection is closed.
var errResponseTooLarge = errors.New("upstream response body over the proxy's buffer limit")

// minBodyGrowth is the first allocation for a body the buffer does not
// hold yet.
const minBodyGrowth = 4 << 10

// readResponse reads the body of an answer whose header readHeader read
// into resp: the body its framing gives, at most limit bytes.
// isHead says the answer has no body, whatever its header says. reusable
// reports whether the connection may carry another exchange as far as the
// answer's header goes: not after a body that ends with the connection,
// Connection: close, or a switch of protocols.
func readResponse(br *bufio.Reader, resp *fasthttp.Response, isHead bool, limit int) (reusable bool, err error) {
	status := resp.StatusCode()
	reusable = status >= 200 && !resp.ConnectionClose()
	if isHead || !hasBody(status) {
		return reusable, nil
	}
	if resp.Header.ContentLength() == -2 {
		reusable = false // the body ends when the connection does
	}
	if err := readBody(br, resp, limit); err != nil {
		return false, &bodyReadError{err: err}
	}
	return reusable, nil
}

// bodyReadError is a failure after the answer's header arrived. nginx's
// proxy_next_upstream covers errors and timeouts up to the response
// header only, so such a request is never tried again.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "reading upstream body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// readWhole reads one answer, header and body, into resp.
func readWhole(br *bufio.Reader, resp *fasthttp.Response, isHead bool, limit int) (reusable bool, err error) {
	if _, err := readHeader(br, resp, isHead, false, limit); err != nil {
		return false, err
	}
	return readResponse(br, resp, isHead, limit)
}

// readHeader reads an answer's header (informational answers skipped) and
// reports whether its body should stream rather than be read into resp:
// when the route asked (response_buffering off) or the declared length is
// over what the proxy buffers.
func readHeader(br *bufio.Reader, resp *fasthttp.Response, isHead, stream bool, limit int) (streams bool, err error) {
	resp.Reset()
	resp.Header.SetNoDefaultContentType(true)
	resp.SkipBody = true // header only; the body is read or streamed after
	err = resp.ReadLimitBody(br, 0)
	resp.SkipBody = isHead
	if err != nil || isHead || !hasBody(resp.StatusCode()) {
		return false, err
	}
	return stream || resp.Header.ContentLength() > limit, nil
}

// hasBody reports whether an answer of this status may have a body (RFC
// 9112 §6.3).
func hasBody(status int) bool {
	return status >= 200 && status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified
}

// readBody reads the body resp's header frames into resp's body buffer. A
// body of unknown length (chunked, or until the connection closes) that
// outgrows limit is a *bufferOverflow: the rest is to stream.
func readBody(br *bufio.Reader, resp *fasthttp.Response, limit int) error {
	b := resp.SwapBody(nil)[:0]
	var err error
	chunkLeft := 0
	switch n := resp.Header.ContentLength(); {
	case n >= 0:
		if n > limit {
			err = errResponseTooLarge
			break
		}
		b, err = appendBodyBytes(br, b, n, n)
	case n == -1:
		b, chunkLeft, err = appendChunked(br, b, limit)
		if err == nil {
			err = readTrailer(br, resp)
		}
	default:
		b, err = appendUntilEOF(br, b, limit)
		if err == nil {
			resp.Header.SetContentLength(len(b))
		}
	}
	if errors.Is(err, errResponseTooLarge) {
		// A chunk too large to be a size (chunkLeft 0) is refused; any
		// other answer of unknown length streams on.
		if n := resp.Header.ContentLength(); n == -2 || n == -1 && chunkLeft > 0 {
			return &bufferOverflow{held: b, chunkLeft: chunkLeft}
		}
		b = nil // not worth keeping in fasthttp's buffer pool
	}
	resp.SwapBody(b)
	return err
}

// bufferOverflow is an answer of unknown length that outgrew what the
// proxy buffers: it is not refused (nginx would spill it to a temporary
// file and pass it on), the rest of it streams after what was held.
type bufferOverflow struct {
	held      []byte // the body read so far
	chunkLeft int    // chunked: data left of the chunk being read
}

func (e *bufferOverflow) Error() string {
	return fmt.Sprintf("upstream body of unknown length over %d bytes: streaming the rest", len(e.held))
}

// overflowOf returns the overflow err is, if it is one.
func overflowOf(err error) *bufferOverflow {
	if err == nil {
		return nil // before over exists: it escapes, and would cost every answer an allocation
	}
	var over *bufferOverflow
	if !errors.As(err, &over) {
		return nil
	}
	return over
}

// Unwrap makes an overflow that cannot stream (an upgrade's refusal) an
// answer too large, as it was before answers could stream.
func (e *bufferOverflow) Unwrap() error { return errResponseTooLarge }

// appendBodyBytes appends exactly n bytes from br to b, growing b as they
// arrive: at most doubling it, and by no more than upTo, the most the
// whole body may still bring.
func appendBodyBytes(br *bufio.Reader, b []byte, n, upTo int) ([]byte, error) {
	for n > 0 {
		b = growFor(b, upTo)
		m := min(n, cap(b)-len(b))
		got, err := io.ReadFull(br, b[len(b):len(b)+m])
		b, n, upTo = b[:len(b)+got], n-got, upTo-got
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return b, fmt.Errorf("read upstream body: %w", err)
		}
	}
	return b, nil
}

// growFor makes room in a full b for some of the upTo bytes still to
// come: as much again as b holds, so that copying stays linear in the
// body's length.
func growFor(b []byte, upTo int) []byte {
	if len(b) < cap(b) {
		return b
	}
	nb := make([]byte, len(b), len(b)+min(upTo, max(len(b), minBodyGrowth)))
	copy(nb, b)
	return nb
}

// appendUntilEOF appends everything until the upstream closes (a body
// framed by neither length nor chunks), at most limit bytes.
func appendUntilEOF(br *bufio.Reader, b []byte, limit int) ([]byte, error) {
	for {
		b = growFor(b, limit+1-len(b))
		got, err := br.Read(b[len(b):cap(b)])
		b = b[:len(b)+got]
		switch {
		case len(b) > limit:
			return b, errResponseTooLarge
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, fmt.Errorf("read upstream body: %w", err)
		}
	}
}

// appendChunked appends the data of a chunked body (RFC 9112 §7.1), at most
// limit bytes, and stops after the last chunk's size line. Over limit it
// stops after the size line of the chunk that does not fit, and reports
// that chunk's size with errResponseTooLarge.
func appendChunked(br *bufio.Reader, b []byte, limit int) (_ []byte, chunkLeft int, err error) {
	for {
		size, err := readChunkSize(br, math.MaxInt32)
		if err != nil {
			return b, 0, err
		}
		if size == 0 {
			return b, 0, nil
		}
		if size > limit-len(b) {
			return b, size, errResponseTooLarge
		}
		if b, err = appendBodyBytes(br, b, size, limit-len(b)); err != nil {
			return b, 0, err
		}
		if err := readCRLF(br); err != nil {
			return b, 0, err
		}
	}
}

// errBadChunk is a chunked body that breaks RFC 9112's grammar.
var errBadChunk = errors.New("malformed chunked upstream body")

// readChunkSize reads a chunk-size line: hex digits, optional extensions
// (ignored), CRLF. A size over limit is errResponseTooLarge however many
// digits it has. The line must fit the read buffer.
func readChunkSize(br *bufio.Reader, limit int) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("read chunk size: %w", err)
	}
	line, ok := cutSuffix(line, "\r\n")
	if !ok {
		return 0, errBadChunk
	}
	size, digits := 0, 0
	for ; digits < len(line); digits++ {
		v, ok := hexValue(line[digits])
		if !ok {
			break
		}
		if size > limit {
			continue // too large already; read on only to check the syntax
		}
		size = size<<4 | v
	}
	if digits == 0 || !validChunkExt(line[digits:]) {
		return 0, errBadChunk
	}
	if size > limit {
		return 0, errResponseTooLarge
	}
	return size, nil
}

// validChunkExt accepts what may follow a chunk size: nothing, or
// whitespace and ";" extensions, with no control bytes (a bare CR or LF
// in them is how requests get smuggled past lenient parsers).
func validChunkExt(ext []byte) bool {
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) > 0 && ext[0] != ';' {
		return false
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func hexValue(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

func cutSuffix(b []byte, suffix string) ([]byte, bool) {
	if len(b) < len(suffix) || string(b[len(b)-len(suffix):]) != suffix {
		return b, false
	}
	return b[:len(b)-len(suffix)], true
}

// readCRLF reads the CRLF that ends a chunk's data.
func readCRLF(br *bufio.Reader) error {
	crlf, err := br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read chunk end: %w", err)
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return errBadChunk
	}
	_, err = br.Discard(2)
	return err
}

// readTrailer reads the trailer section that ends a chunked body, as
// fasthttp's own chunked reading does.
func readTrailer(br *bufio.Reader, resp *fasthttp.Response) error {
	err := resp.Header.ReadTrailer(br)
	if err == io.EOF {
		return fmt.Errorf("read trailer: %w", io.ErrUnexpectedEOF)
	}
	return err
}
