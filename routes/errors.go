package routes

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Details the client sees. The frontend shows detail to users, so it says
// what happened in plain words and never carries internals.
const (
	detailUnavailable = "Upstream service is unavailable."
	detailTimeout     = "Upstream service timed out."
	detailBadGateway  = "Upstream service failed to answer properly."
	detailBusy        = "Upstream service is busy, try again shortly."
	detailInternal    = "Internal Server Error"
	detailOverloaded  = "Gateway is overloaded, try again shortly."
	detailTooLarge    = "Request body too large."
	detailInvalidPath = "Invalid path."
	// detailTooManyRequests is the 429 of a rate limit (ratelimit/).
	detailTooManyRequests = "Too many requests."
	// detailRateLimitUnavailable is the 503 of a rate limit whose shared
	// store (Redis) could not decide, when it fails closed.
	detailRateLimitUnavailable = "Rate limit unavailable, try again shortly."
)

// retryAfterSeconds is what a client told "busy" should wait.
const retryAfterSeconds = 1

// upstreamError is a failed round trip to the ingest service, kept whole
// for the log while the client gets only the status and detail.
type upstreamError struct {
	kind upstream.Kind
	err  error
}

func (e *upstreamError) Error() string { return "upstream " + string(e.kind) + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// statusOf maps an upstream failure to what the client sees: 503 when the
// service cannot be reached or is saturated, 504 when it went silent, 502
// when it broke the exchange. 500 stays reserved for the gateway's own bugs.
func statusOf(kind upstream.Kind) (int, string) {
	switch kind {
	case upstream.KindRefused:
		return fiber.StatusServiceUnavailable, detailUnavailable
	case upstream.KindPoolExhausted:
		return fiber.StatusServiceUnavailable, detailBusy
	case upstream.KindTimeout:
		return fiber.StatusGatewayTimeout, detailTimeout
	}
	return fiber.StatusBadGateway, detailBadGateway
}

// ErrorHandler answers every error a handler returns with JSON
// {"detail": "..."}. A *fiber.Error keeps its status and message; an
// upstream failure is mapped by statusOf; anything else is a gateway bug,
// logged whole and answered 500 with a generic detail.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	log = logging.Named(log, "gateway.errors")
	return func(c *fiber.Ctx, err error) error {
		status, detail := fiber.StatusInternalServerError, detailInternal
		var fe *fiber.Error
		var ue *upstreamError
		switch {
		case errors.As(err, &fe):
			status, detail = fe.Code, fe.Message
			// Most such answers come before the body is read (404, 405,
			// every refusal: admission, token, rate); those after it have
			// closed lingering already. This is the one place that readies
			// their connections.
			answerBeforeBody(c.Context())
		case errors.As(err, &ue):
			status, detail = statusOf(ue.kind)
			if ue.kind == upstream.KindPoolExhausted {
				c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds))
			}
			log.LogAttrs(context.Background(), slog.LevelError, "Upstream request failed",
				slog.String("request_id", requestIDOf(c)),
				slog.String("kind", string(ue.kind)),
				slog.String("error", ue.err.Error()),
				slog.Int("status_code", status))
		default:
			log.LogAttrs(context.Background(), slog.LevelError, "Unhandled error",
				slog.String("request_id", requestIDOf(c)),
				slog.String("error", err.Error()))
		}
		return writeDetail(c, status, detail)
	}
}

// writeDetail replaces whatever response was under way with the JSON error.
func writeDetail(c *fiber.Ctx, status int, detail string) error {
	c.Response().ResetBody()
	c.Status(status)
	return c.JSON(fiber.Map{"detail": detail})
}

// logPanic logs a recovered panic, with its stack, at error level.
func logPanic(log *slog.Logger) func(*fiber.Ctx, any) {
	log = logging.Named(log, "gateway.errors")
	return func(c *fiber.Ctx, v any) {
		log.LogAttrs(context.Background(), slog.LevelError, "Panic while handling request",
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", c.Method()),
			slog.String("path", string(c.Request().URI().PathOriginal())),
			slog.Any("panic", v),
			slog.String("stack", string(debug.Stack())))
	}
}

// serverErrorHandler answers requests that fasthttp rejects before any
// route runs (malformed, headers too large, body over a limit) with the
// same JSON shape, request ID and latency header as everything else.
// Fiber's own handler would echo fasthttp's internal error text.
func serverErrorHandler(bare bareAnswerer) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		status, detail := fiber.StatusBadRequest, "Malformed request."
		var small *fasthttp.ErrSmallBuffer
		var netErr net.Error
		switch {
		case errors.As(err, &small):
			status, detail = fiber.StatusRequestHeaderFieldsTooLarge, "Request headers too large."
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			status, detail = fiber.StatusRequestEntityTooLarge, "Request body too large."
		case errors.As(err, &netErr) && netErr.Timeout():
			status, detail = fiber.StatusRequestTimeout, "Request timed out."
		}
		closeLingering(ctx)
		bare.answer(ctx, status, detail)
	}
}

// knownMethodsOnly sits in front of Fiber, which answers a method it does
// not know (PROPFIND, BREW, …) with a plain-text 400 that skips every
// middleware. Such a request gets what any other unroutable one gets: 405
// on the proxied route, 404 elsewhere, as JSON.
func knownMethodsOnly(next fasthttp.RequestHandler, ingestPrefix string, bare bareAnswerer) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Method()) {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
			fiber.MethodConnect, fiber.MethodOptions, fiber.MethodTrace, fiber.MethodPatch:
			next(ctx)
			return
		}
		answerBeforeBody(ctx)
		if bytes.HasPrefix(ctx.URI().PathOriginal(), []byte(ingestPrefix)) {
			ctx.Response.Header.Set(fiber.HeaderAllow, allowedMethods)
			bare.answer(ctx, fiber.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		bare.answer(ctx, fiber.StatusNotFound, "Not Found")
	}
}

// bareAnswerer writes {"detail": ...} answers outside Fiber's middleware
// chain, stamped, logged and counted like every other response.
type bareAnswerer struct {
	log     *slog.Logger
	metrics *metrics.Metrics
}

// The time reported is the gateway's own: fasthttp sets the request's start
// time only once it has been read, which these answers come before.
func (b bareAnswerer) answer(ctx *fasthttp.RequestCtx, status int, detail string) {
	start := time.Now()
	b.metrics.InFlight.Inc() // accessLine.finish takes it off again
	h := &ctx.Request.Header
	id := string(h.Peek(fiber.HeaderXRequestID))
	if !validRequestID([]byte(id)) {
		id = newRequestID()
	}
	body := `{"detail":"` + detail + `"}`
	ctx.SetStatusCode(status)
	ctx.SetContentType(fiber.MIMEApplicationJSON)
	ctx.Response.Header.Set(fiber.HeaderXRequestID, id)
	now := time.Now()
	var took [16]byte
	ctx.Response.Header.SetBytesV("X-Process-Time", appendMillis(took[:0], now.Sub(start)))
	ctx.SetBodyString(body)
	// The same line as every other request's. No error text: fasthttp's
	// parse errors quote the raw request, credentials included.
	line := accessLine{
		requestID: id,
		method:    string(ctx.Method()),
		path:      string(ctx.URI().PathOriginal()),
		companyID: string(h.Peek("X-Company-ID")),
		traceID:   traceID(h.Peek("Traceparent")),
		status:    status,
		start:     start,
		stats:     requestStats{clientIP: ctx.RemoteIP().String()},
	}
	line.finish(b.log, b.metrics, now, int64(len(body)), nil, nil)
}

// refuseLargeBodies answers "Expect: 100-continue" for a body declared
// larger than maxBody with 413 instead of 100 Continue, so the client
// never sends it.
func refuseLargeBodies(maxBody int64, bare bareAnswerer) func(*fasthttp.RequestCtx) int {
	return func(ctx *fasthttp.RequestCtx) int {
		if maxBody > 0 && int64(ctx.Request.Header.ContentLength()) > maxBody {
			return bare.refuseContinue(ctx, fiber.StatusRequestEntityTooLarge, detailTooLarge)
		}
		return fiber.StatusContinue
	}
}

// refuseContinue answers a request with "Expect: 100-continue" with
// status instead of 100 Continue, and returns status for the Expect
// handler. The client should not send its body now, but may anyway: the
// connection closes lingering.
func (b bareAnswerer) refuseContinue(ctx *fasthttp.RequestCtx, status int, detail string) int {
	closeLingering(ctx)
	b.answer(ctx, status, detail)
	return status
}
