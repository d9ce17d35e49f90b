package upstream

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"
)

// Kind names a way a proxied request can fail, coarse enough to be a
// metric label and to decide the status code the client sees.
type Kind string

// The kinds of upstream failure.
const (
	// KindRefused: no connection could be made (refused, unreachable, DNS).
	KindRefused Kind = "refused"
	// KindTimeout: connecting, or a read or write, outlasted its timeout.
	KindTimeout Kind = "timeout"
	// KindReset: the upstream closed or reset the connection.
	KindReset Kind = "reset"
	// KindBadResponse: the upstream answered something that is not HTTP.
	KindBadResponse Kind = "bad_response"
	// KindPoolExhausted: every allowed connection stayed busy for the
	// whole pool timeout.
	KindPoolExhausted Kind = "pool_exhausted"
)

// Classify says which kind of failure err, returned by the client's Do, is.
func Classify(err error) Kind {
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return KindPoolExhausted
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.As(err, &dnsErr), errors.As(err, &opErr) && opErr.Op == "dial":
		return KindRefused
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return KindReset
	}
	return KindBadResponse
}
