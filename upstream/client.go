// Package upstream builds the pooled fasthttp client that carries every
// proxied request to the ingest service, and names what went wrong when a
// request through it fails.
package upstream

import (
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure the client. Every duration must be positive.
type Options struct {
	// URL is the ingest service; only its scheme and host:port are used.
	URL *url.URL
	// Timeout is the inactivity timeout: the longest any single read or
	// write on an upstream connection may wait. It is not a total, so a long
	// transfer that keeps moving is never cut.
	Timeout time.Duration
	// ConnectTimeout bounds dialing.
	ConnectTimeout time.Duration
	// IdleConnTimeout closes pooled connections unused for this long; keep
	// it below the upstream's keep-alive timeout.
	IdleConnTimeout time.Duration
	// MaxConns caps open connections.
	MaxConns int
	// PoolTimeout is how long a request waits for a free connection when
	// MaxConns are busy before failing with KindPoolExhausted.
	PoolTimeout time.Duration
	// Conns, if set, lists every open connection, for splicing downloads;
	// not for an https upstream, whose sockets carry TLS records.
	Conns *Conns
}

// ReadBufferSize is the size of each upstream connection's read buffer,
// which bounds the response header; a read of at least this much through a
// response body stream empties it (see Conns.Source).
const ReadBufferSize = 16 << 10

// writeBufferSize is the size of each upstream connection's write buffer:
// 32 KiB writes move uploads in fewer system calls.
const writeBufferSize = 32 << 10

// NewClient returns a HostClient that streams both bodies and forwards
// request paths byte for byte.
func NewClient(o Options) *fasthttp.HostClient {
	tls := o.URL.Scheme == "https"
	addr := o.URL.Host
	if o.URL.Port() == "" {
		port := "80"
		if tls {
			port = "443"
		}
		addr = net.JoinHostPort(o.URL.Hostname(), port)
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.HostClient{
		Addr:  addr,
		IsTLS: tls,
		Dial: func(addr string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			ic := newIdleTimeoutConn(c, o.Timeout)
			if o.Conns != nil && !tls { // a TLS socket's bytes are not the body
				ic.conns = o.Conns
				o.Conns.byLocal.Store(c.LocalAddr(), ic)
			}
			return ic, nil
		},
		MaxConns:            o.MaxConns,
		MaxConnWaitTimeout:  o.PoolTimeout,
		MaxIdleConnDuration: o.IdleConnTimeout,
		// Most recently used first: a few hot connections carry the load
		// and the rest idle out, instead of every connection being cycled
		// (and kept open) by a FIFO pool.
		ConnPoolStrategy: fasthttp.LIFO,
		ReadBufferSize:   ReadBufferSize,
		WriteBufferSize:  writeBufferSize,
		// Without these, a body is held whole in memory and "/a//b/%2e" is
		// rewritten to "/a/b/." on its way upstream.
		StreamResponseBody:     true,
		DisablePathNormalizing: true,
		// The client's own User-Agent, or none, goes upstream.
		NoDefaultUserAgentHeader: true,
		// Errors are logged: keep the upstream's bytes out of them.
		SecureErrorLogMessage: true,
		// One retry, and only of an idempotent request whose connection was
		// found dead before any response byte came back: a keep-alive
		// connection the upstream closed while it idled in the pool. A
		// RetryIfErr replaces fasthttp's own idempotency check, so the
		// method is checked here: a POST without a body is not streamed,
		// and the upstream may have acted on it before its connection died.
		// Requests with a streamed body are never retried by fasthttp, so
		// no upload is sent twice.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			return false, isIdempotent(req.Header.Method()) && isStaleConn(err)
		},
	}
}

// isIdempotent reports whether a request with this method may be sent
// twice with the effect of once (RFC 9110, section 9.2.2).
func isIdempotent(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions,
		fasthttp.MethodTrace, fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}

// isStaleConn reports whether err is what a keep-alive connection closed by
// the upstream while idle in the pool looks like on first use. Timeouts are
// not stale connections: retrying them would double the wait.
func isStaleConn(err error) bool {
	// io.EOF is what fasthttp reports, within its retry loop, for a
	// connection that closed before the first response byte.
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
