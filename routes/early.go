package routes

import (
	"github.com/atenex/gateway/linger"
	"github.com/valyala/fasthttp"
)

// unreadBodyDiscarded is how much of an unread request body fasthttp
// reads and drops itself after the answer, keeping the connection alive
// (its maxUnreadStreamBodySize). Past it, it closes the connection.
const unreadBodyDiscarded = 256 << 10

// answerBeforeBody readies the connection of a request that is answered
// before its body has been read: a refusal from the headers alone (413,
// 503, 401, 429, …). A short body fasthttp reads and drops after the
// answer, and the connection lives on. A long or chunked one is not
// worth reading: the connection closes after the answer, and closes
// lingering (see package linger), so that a client still sending gets
// the answer and not a reset. Call it before the answer is written.
func answerBeforeBody(ctx *fasthttp.RequestCtx) {
	if !bodyPending(&ctx.Request.Header) {
		return
	}
	ctx.SetConnectionClose()
	linger.Mark(ctx.Conn())
}

// closeLingering closes the connection after the answer, lingering: for
// answers to requests fasthttp could not even finish reading the headers
// of, whose unread rest is still on the wire.
func closeLingering(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	linger.Mark(ctx.Conn())
}

// bodyPending says whether a body follows the headers that fasthttp
// would not read and drop by itself: a chunked one (of unknown length),
// or one longer than it discards.
func bodyPending(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n == -1 || n > unreadBodyDiscarded
}
