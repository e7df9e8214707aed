package proxy

import "bytes"

// HeaderEdits is a request's list of changes to the headers sent upstream,
// applied by appendUpstreamHead in its one pass over the client's headers:
// a header set or removed here drops the client's headers of that name,
// then the set and added ones follow the client's. The headers Kong sets
// itself (X-Forwarded-*, X-Real-IP, Via, X-Kong-Request-Id, Host,
// Content-Length) are not editable here. It lives in the pooled request
// state, so editing allocates only while its buffers grow.
type HeaderEdits struct {
	ops []headerOp
	buf []byte // names and values of ops
}

type headerOpKind uint8

const (
	headerAdd headerOpKind = iota
	headerSet
	headerRemove
)

type headerOp struct {
	kind        headerOpKind
	name, value [2]int // offsets in buf
}

// Add sends one more header name: value upstream.
func (e *HeaderEdits) Add(name, value string) { e.push(headerAdd, name, value) }

// Set replaces every client header of this name with name: value.
func (e *HeaderEdits) Set(name, value string) { e.push(headerSet, name, value) }

// Remove drops every client header of this name.
func (e *HeaderEdits) Remove(name string) { e.push(headerRemove, name, "") }

func (e *HeaderEdits) push(kind headerOpKind, name, value string) {
	op := headerOp{kind: kind}
	op.name = [2]int{len(e.buf), len(e.buf) + len(name)}
	e.buf = append(e.buf, name...)
	op.value = [2]int{len(e.buf), len(e.buf) + len(value)}
	e.buf = append(e.buf, value...)
	e.ops = append(e.ops, op)
}

func (e *HeaderEdits) reset() {
	e.ops, e.buf = e.ops[:0], e.buf[:0]
}

func (e *HeaderEdits) bytes(r [2]int) []byte { return e.buf[r[0]:r[1]] }

// drops reports whether the client's header name is set or removed.
func (e *HeaderEdits) drops(name []byte) bool {
	for _, op := range e.ops {
		if op.kind != headerAdd && bytes.EqualFold(e.bytes(op.name), name) {
			return true
		}
	}
	return false
}

// appendHeaders appends the set and added headers, in the order given; of
// several Sets of one name the last wins, and a later Remove undoes them.
func (e *HeaderEdits) appendHeaders(dst []byte) []byte {
	for i, op := range e.ops {
		if op.kind == headerRemove || e.overridden(i) {
			continue
		}
		dst = appendHeaderLine(dst, e.bytes(op.name), e.bytes(op.value))
	}
	return dst
}

// overridden reports whether a later Set or Remove of the same name
// replaces op i.
func (e *HeaderEdits) overridden(i int) bool {
	name := e.bytes(e.ops[i].name)
	for _, later := range e.ops[i+1:] {
		if later.kind != headerAdd && bytes.EqualFold(e.bytes(later.name), name) {
			return true
		}
	}
	return false
}
