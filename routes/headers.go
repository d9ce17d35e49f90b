package routes

import (
	"bytes"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// maxConnectionTokens bounds how many header names a Connection header may
// make hop-by-hop; further names are ignored (and so forwarded).
const maxConnectionTokens = 16

// endToEnd picks, from one message's headers, those meant for the far
// end: not hop-by-hop (RFC 9110 §7.6.1), not named in a Connection
// header, and not in replaced, the headers the gateway sets itself. Its
// users range over the headers twice, calling note on each, then adding
// each that keep allows to the outgoing header. Building that header this
// way, rather than deleting from a copy, keeps every value of a repeated
// header in its original order: fasthttp's Del reorders what is left.
//
// The loops are the callers', over fasthttp's All() in their own body, so
// the compiler inlines the iterator: a helper taking the iterator as a
// value would allocate its loop bodies on every request.
type endToEnd struct {
	replaced []string
	named    [maxConnectionTokens][]byte // what Connection headers list
	listed   int
}

// note records the header names a Connection header makes hop-by-hop.
func (e *endToEnd) note(k, v []byte) {
	if !strings.EqualFold(string(k), fiber.HeaderConnection) {
		return
	}
	for len(v) > 0 && e.listed < len(e.named) {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = bytes.TrimSpace(tok); len(tok) > 0 {
			e.named[e.listed] = tok
			e.listed++
		}
	}
}

// keep reports whether the header named k goes to the far end; every
// header must have been noted first.
func (e *endToEnd) keep(k []byte) bool {
	return !isHopByHop(k) && !containsFold(e.named[:e.listed], k) && !containsFoldString(e.replaced, k)
}

// isHopByHop reports whether a header belongs to one connection. Proxy-
// Connection is not standard but old clients still send it; Trailers is
// how the original spelled Trailer.
func isHopByHop(name []byte) bool {
	return containsFoldString([]string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Proxy-Connection", "TE", "Trailer", "Trailers", "Transfer-Encoding", "Upgrade"}, name)
}

func containsFold(list [][]byte, s []byte) bool {
	for _, x := range list {
		if bytes.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func containsFoldString(list []string, s []byte) bool {
	for _, x := range list {
		if len(x) == len(s) && strings.EqualFold(x, string(s)) {
			return true
		}
	}
	return false
}

// buildRequestHeader writes into dst the header to send upstream: the
// client's end-to-end headers (its Host included) with the request target
// replaced, then the gateway's own: X-Request-ID exactly once, and the
// X-Forwarded-* trio. Client-sent X-Forwarded-* values are replaced, not
// extended: the gateway is the edge, and a client could claim any address.
// Expect is dropped because the gateway has already answered it.
//
// A client without a Host header (HTTP/1.0 allows that) is sent to the
// upstream with the upstream's own host, as nginx does; a Host its
// Connection header names is kept all the same. No Content-Type is
// invented for a body that came without one.
//
// Behind trusted proxies (GATEWAY_TRUSTED_PROXIES), stats carries the
// chain they forwarded extended with the peer, and their proto and host.
func buildRequestHeader(dst *fasthttp.RequestHeader, c *fiber.Ctx, target []byte, requestID string, stats *requestStats, upstreamHost string) {
	src := &c.Request().Header
	dst.SetNoDefaultContentType(true)
	dst.SetMethodBytes(src.Method())
	dst.SetRequestURIBytes(target)
	e := endToEnd{replaced: []string{fiber.HeaderContentLength, fiber.HeaderXRequestID, fiber.HeaderExpect,
		fiber.HeaderXForwardedFor, fiber.HeaderXForwardedProto, fiber.HeaderXForwardedHost}}
	for k, v := range src.All() {
		e.note(k, v)
	}
	for k, v := range src.All() {
		if e.keep(k) {
			dst.AddBytesKV(k, v)
		}
	}
	if len(dst.Host()) == 0 {
		// No Host from the client, or one its Connection header named:
		// a request cannot go without one, and Host is for every hop.
		if host := src.Host(); len(host) > 0 {
			dst.SetHostBytes(host)
		} else {
			dst.SetHost(upstreamHost)
		}
	}
	dst.Set(fiber.HeaderXRequestID, requestID)
	if stats.forwardedFor != "" {
		dst.Set(fiber.HeaderXForwardedFor, stats.forwardedFor)
		dst.Set(fiber.HeaderXForwardedProto, stats.proto)
		dst.Set(fiber.HeaderXForwardedHost, stats.host)
		return
	}
	dst.Set(fiber.HeaderXForwardedFor, stats.clientIP)
	// Not c.Protocol(): with no trusted proxies configured, Fiber believes
	// the client's own X-Forwarded-Proto and X-Url-Scheme.
	proto := "http"
	if c.Context().IsTLS() {
		proto = "https"
	}
	dst.Set(fiber.HeaderXForwardedProto, proto)
	dst.SetBytesV(fiber.HeaderXForwardedHost, src.Host())
}

// copyResponseHeaders adds the upstream's end-to-end headers to dst, which
// already holds the gateway's own: its X-Request-ID and CORS answer win
// over any the upstream sent (a browser refuses a response with two
// Access-Control-Allow-Origin values). Several Set-Cookie lines stay
// several; Content-Encoding is kept; Vary values add up. Content-Length is
// left to the body dst is given.
func copyResponseHeaders(dst, src *fasthttp.ResponseHeader) {
	dst.SetStatusCode(src.StatusCode())
	dst.SetNoDefaultContentType(true)
	e := endToEnd{replaced: []string{fiber.HeaderContentLength,
		fiber.HeaderXRequestID, "X-Process-Time",
		fiber.HeaderAccessControlAllowOrigin, fiber.HeaderAccessControlAllowCredentials,
		fiber.HeaderAccessControlAllowHeaders, fiber.HeaderAccessControlAllowMethods,
		fiber.HeaderAccessControlExposeHeaders, fiber.HeaderAccessControlMaxAge}}
	for k, v := range src.All() {
		e.note(k, v)
	}
	for k, v := range src.All() {
		if e.keep(k) {
			dst.AddBytesKV(k, v)
		}
	}
}
