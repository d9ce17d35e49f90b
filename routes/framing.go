package routes

import (
	"bytes"

	"github.com/gofiber/fiber/v2"
)

// screenRequest runs the checks every request gets before anything else
// (one middleware rather than two: each Fiber hop walks the route stack
// again). It refuses requests whose body framing two HTTP implementations
// could read differently, the root of request smuggling (RFC 9112 §6.3,
// §11.2): Content-Length together with Transfer-Encoding, a
// Transfer-Encoding other than chunked, and obs-folded header lines.
// fasthttp already refuses differing duplicate Content-Lengths and
// malformed chunk sizes. The connection is closed, so no byte after the
// headers is ever read as another request. And it drops an unusable
// client X-Request-ID.
func screenRequest(c *fiber.Ctx) error {
	if ambiguousFraming(c.Request().Header.RawHeaders()) {
		closeLingering(c.Context())
		return fiber.NewError(fiber.StatusBadRequest, "Malformed request.")
	}
	dropInvalidRequestIDHeader(&c.Request().Header)
	return c.Next()
}

// ambiguousFraming reads the headers as received, before fasthttp's
// parsing has folded several of them into one answer.
func ambiguousFraming(raw []byte) bool {
	var contentLength, transferEncoding int
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return true // obs-fold: a continuation of the previous header
		}
		name, value, _ := bytes.Cut(line, []byte{':'})
		switch {
		case bytes.EqualFold(name, []byte(fiber.HeaderContentLength)):
			contentLength++
		case bytes.EqualFold(name, []byte(fiber.HeaderTransferEncoding)):
			transferEncoding++
			if !bytes.EqualFold(bytes.TrimSpace(value), []byte("chunked")) {
				return true
			}
		}
	}
	return transferEncoding > 0 && contentLength > 0 || transferEncoding > 1
}
