package routes

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
)

// requestIDKey is where the request ID lives in the context's Locals.
const requestIDKey = "requestid"

// maxRequestIDLen bounds a client-chosen X-Request-ID. A UUID is 36 bytes;
// 128 leaves room for other tracing schemes without letting a client put
// kilobytes into every log line.
const maxRequestIDLen = 128

// dropInvalidRequestIDHeader removes a client X-Request-ID that is empty,
// too long or not printable ASCII, so the requestid middleware generates a
// fresh one instead of echoing (and logging) whatever the client sent.
func dropInvalidRequestIDHeader(h *fasthttp.RequestHeader) {
	if id := h.Peek(fiber.HeaderXRequestID); id != nil && !validRequestID(id) {
		h.Del(fiber.HeaderXRequestID)
	}
}

func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, b := range id {
		if b <= ' ' || b >= 0x7f {
			return false
		}
	}
	return true
}

// newRequestID returns a random (version 4) UUID. The requestid
// middleware's default is a predictable counter; uuid.NewString would make
// a getrandom system call per request. The runtime's generator behind
// math/rand/v2 is ChaCha8, seeded from the operating system: unpredictable,
// and without a system call. A request ID names a request; it guards
// nothing, so it needs no more than that.
func newRequestID() string {
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id.String()
}

// requestIDOf returns the request's ID, or "" before the requestid
// middleware has run.
func requestIDOf(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}
