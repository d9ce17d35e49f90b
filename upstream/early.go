package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// An upstream may answer before it has read the whole request body, and
// then stop reading and close: a service refusing an upload from its
// headers (415, 401, 413), or a proxy in front of it. fasthttp writes the
// whole body before it reads anything, so the write fails with a reset or
// a broken pipe and the answer, already in the socket's receive queue,
// would be lost: the client would get a 502 instead of the service's
// status and detail. RFC 9112, section 9.3, asks a client sending a body to
// watch for such an answer. So when a write fails that way, the connection
// looks for one; if it finds the head of an HTTP response, the rest of the
// request body is dropped (writes succeed and go nowhere) and reads return
// the answer, marked Connection: close so that fasthttp closes the
// connection after it instead of pooling it.

const (
	// earlyAnswerWait bounds the wait for an answer after the write
	// failed. It is normally in the receive queue already: the upstream
	// sent it before closing.
	earlyAnswerWait = time.Second
	// earlyAnswerHead bounds the answer's head the connection reads to
	// find its end; a longer head is not taken, and the write fails.
	earlyAnswerHead = ReadBufferSize
)

// earlyAnswer is the state of a connection that took an early answer.
type earlyAnswer struct {
	// pending is what reads return before the socket's own bytes: the
	// answer's head, with Connection: close added, and the body bytes
	// read along with it.
	pending []byte
	// reading is set by the first read: the request is over, so a write
	// now would be a new request on a connection that is done.
	reading bool
}

// errAnsweredEarly is what a connection that took an early answer says to
// a next request. It wraps EPIPE, the broken pipe the connection really is,
// so that the request counts as sent on a dead connection (isStaleConn).
var errAnsweredEarly = fmt.Errorf("upstream connection closed after an early answer: %w", syscall.EPIPE)

// takeEarlyAnswer reports whether, after a write failed with err, an
// answer of the upstream was found and the connection now serves it.
func (c *idleTimeoutConn) takeEarlyAnswer(err error) bool {
	if c.early != nil || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return false
	}
	wait := earlyAnswerWait
	if c.timeout > 0 {
		wait = min(wait, c.timeout)
	}
	if c.Conn.SetReadDeadline(time.Now().Add(wait)) != nil {
		return false
	}
	buf := make([]byte, earlyAnswerHead)
	n, at := 0, -1
	for n < len(buf) && at < 0 {
		k, err := c.Conn.Read(buf[n:])
		n += k
		at = finalHeadEnd(buf[:n])
		if err != nil {
			break
		}
	}
	// Back to the idle deadline last set (zero: none).
	if c.Conn.SetReadDeadline(c.readBy) != nil || at < 0 {
		return false
	}
	// Added last, so it wins over a Connection header of the answer's own
	// (fasthttp keeps the last one).
	pending := make([]byte, 0, n+len("Connection: close\r\n"))
	pending = append(pending, buf[:at]...)
	pending = append(pending, "Connection: close\r\n"...)
	pending = append(pending, buf[at:n]...)
	c.early = &earlyAnswer{pending: pending}
	return true
}

// finalHeadEnd returns where, in b, the blank line ending the head of the
// final answer starts, past any interim (1xx) answers before it, or -1 if
// b does not hold the whole head of an HTTP/1.x answer. Lines may end with
// CRLF or, as fasthttp also accepts, a bare LF.
func finalHeadEnd(b []byte) int {
	for head, i := 0, 0; ; {
		if i == head && !bytes.HasPrefix(b[head:], []byte("HTTP/1.")) {
			return -1
		}
		nl := bytes.IndexByte(b[i:], '\n')
		if nl < 0 {
			return -1
		}
		next := i + nl + 1
		if len(bytes.TrimSuffix(b[i:i+nl], []byte("\r"))) > 0 {
			i = next
			continue
		}
		// A blank line: the end of this answer's head. Only a 1xx but 101
		// is interim, as for fasthttp's own parser.
		if code := statusCode(b[head:]); code < 100 || code >= 200 || code == 101 {
			return i
		}
		head, i = next, next // An interim answer; the final one follows.
	}
}

// statusCode reads the status code of the status line b starts with, or
// returns 0.
func statusCode(b []byte) int {
	_, rest, ok := bytes.Cut(b, []byte(" "))
	rest = bytes.TrimLeft(rest, " ")
	if !ok || len(rest) < 3 {
		return 0
	}
	code := 0
	for _, d := range rest[:3] {
		if d < '0' || d > '9' {
			return 0
		}
		code = code*10 + int(d-'0')
	}
	return code
}

// readEarly serves reads from the early answer; ok is false when the
// connection has none.
func (c *idleTimeoutConn) readEarly(p []byte) (n int, ok bool) {
	e := c.early
	if e == nil {
		return 0, false
	}
	e.reading = true
	if len(e.pending) == 0 {
		return 0, false
	}
	n = copy(p, e.pending)
	e.pending = e.pending[n:]
	return n, true
}

// writeEarly drops what a connection that took an early answer is asked to
// write: the rest of the request body, or, should fasthttp ever reuse the
// connection, an error it takes for a connection found dead, as it is.
func (c *idleTimeoutConn) writeEarly(p []byte) (int, error) {
	if c.early.reading {
		return 0, &net.OpError{Op: "write", Net: "tcp", Addr: c.RemoteAddr(), Err: errAnsweredEarly}
	}
	return len(p), nil
}
