package routes

import (
	"bytes"
	"strconv"
	"time"

	"github.com/atenex/gateway/clientip"
	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/ratelimit"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// rateDecidedKey marks, in a request's user values, that its rate-limit
// decision was already made (and charged) by the Expect handler.
const rateDecidedKey = "gateway.ratelimited"

// rateLimiter wires a ratelimit.Limiter (in memory, or in Redis) into
// the request path: before admission, so a client over its rate never
// takes or waits for a slot, and before 100 Continue for uploads.
type rateLimiter struct {
	limit     ratelimit.Limiter
	byCompany bool
	trusted   *clientip.Resolver
	metrics   *metrics.Metrics
}

// keyLabel is the metric label for what the limit counts per.
func (r *rateLimiter) keyLabel() string {
	if r.byCompany {
		return "company"
	}
	return "client_ip"
}

// key is what a request is counted against: its company when the limit
// is per company and it names one, else its client address.
func (r *rateLimiter) key(h *fasthttp.RequestHeader, clientIP string) string {
	if r.byCompany {
		if id := h.Peek("X-Company-ID"); len(id) > 0 {
			return "c:" + ratelimit.Key(id)
		}
	}
	return "ip:" + clientIP
}

// handler charges each proxied request, and refuses with 429 one over the
// limit. CORS preflights are never counted (the CORS middleware answers
// them before this runs; checked here too, so a reordering cannot).
func (r *rateLimiter) handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Locals(rateDecidedKey) != nil {
			return c.Next()
		}
		h := &c.Request().Header
		if c.Method() == fiber.MethodOptions && len(h.Peek(fiber.HeaderAccessControlRequestMethod)) > 0 {
			return c.Next()
		}
		d := r.limit.Allow(r.key(h, statsOf(c).clientIP))
		if d.Allowed {
			setRateHeaders(&c.Response().Header, d)
			return c.Next()
		}
		status, detail := r.refusal(&c.Response().Header, d)
		return fiber.NewError(status, detail) // ErrorHandler readies the connection
	}
}

// refusal counts a refused decision and sets its headers, and returns
// the status to answer: 429 over the limit, 503 when the store could
// not decide and the policy is to fail closed.
func (r *rateLimiter) refusal(h *fasthttp.ResponseHeader, d ratelimit.Decision) (int, string) {
	if d.Undecided {
		h.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds))
		return fiber.StatusServiceUnavailable, detailRateLimitUnavailable
	}
	setRateHeaders(h, d)
	r.metrics.RateLimited.WithLabelValues(r.keyLabel()).Inc()
	return fiber.StatusTooManyRequests, detailTooManyRequests
}

// expect chains after prev into the server's Expect handler, so that an
// upload over the limit gets 429 instead of 100 Continue and its body is
// never sent. Per company, the company is the X-Company-ID header here as
// in the handler; with authentication on, the token check is chained
// before this one and has already set it from the verified token.
func (r *rateLimiter) expect(prev func(*fasthttp.RequestCtx) int, ingestPrefix string, bare bareAnswerer) func(*fasthttp.RequestCtx) int {
	prefix := []byte(ingestPrefix)
	return func(ctx *fasthttp.RequestCtx) int {
		if prev != nil {
			if status := prev(ctx); status != fiber.StatusContinue {
				return status
			}
		}
		if !bytes.HasPrefix(ctx.URI().PathOriginal(), prefix) {
			return fiber.StatusContinue
		}
		d := r.limit.Allow(r.key(&ctx.Request.Header, originOf(ctx, r.trusted).clientIP))
		ctx.SetUserValue(rateDecidedKey, true)
		if d.Allowed {
			setRateHeaders(&ctx.Response.Header, d)
			return fiber.StatusContinue
		}
		status, detail := r.refusal(&ctx.Response.Header, d)
		return bare.refuseContinue(ctx, status, detail)
	}
}

// setRateHeaders writes Retry-After when refused, and the IETF draft's
// RateLimit-Limit, -Remaining and -Reset (whole seconds, rounded up).
// An undecided answer (the store down, failing open) has none of them:
// the gateway does not know.
func setRateHeaders(h *fasthttp.ResponseHeader, d ratelimit.Decision) {
	if d.Undecided {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
	if !d.Allowed {
		h.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, ceilSeconds(d.RetryAfter))))
	}
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
