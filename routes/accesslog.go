package routes

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/atenex/gateway/clientip"
	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// statsKey is where a request's requestStats live in the context's Locals.
const statsKey = "gateway.stats"

// requestStats is what the proxy tells the access log about a request.
type requestStats struct {
	clientIP string // the client's address, worked out once per request
	// forwardedFor, proto and host are the X-Forwarded-* to send upstream.
	forwardedFor, proto, host string
	upstream                  time.Duration // to the upstream's response headers; 0 if not proxied
	bytesIn                   int64         // request body bytes passed upstream
}

// statsOf returns the request's stats, or fresh ones when the access log
// did not run (as in tests that mount a handler alone).
func statsOf(c *fiber.Ctx) *requestStats {
	if s, ok := c.Locals(statsKey).(*requestStats); ok {
		return s
	}
	s := originOf(c.Context(), nil)
	return &s
}

// originOf works out where a request comes from: the peer, or behind the
// trusted proxies the client they name (see clientip.Resolver.Resolve).
// It needs the headers only, so the Expect check can ask it too. With
// none trusted it costs what Fiber's c.IP() does.
func originOf(ctx *fasthttp.RequestCtx, trusted *clientip.Resolver) requestStats {
	if !trusted.Enabled() {
		return requestStats{clientIP: ctx.RemoteIP().String()}
	}
	h := &ctx.Request.Header
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	o := trusted.Resolve(clientip.Request{
		Peer:           peer,
		TLS:            ctx.IsTLS(),
		Host:           string(h.Host()),
		ForwardedFor:   joinedValues(h, fiber.HeaderXForwardedFor),
		ForwardedProto: string(h.Peek(fiber.HeaderXForwardedProto)),
		ForwardedHost:  string(h.Peek(fiber.HeaderXForwardedHost)),
	})
	return requestStats{clientIP: o.Client, forwardedFor: o.ForwardedFor, proto: o.Proto, host: o.Host}
}

// joinedValues joins every line of a repeated header with ", ", as RFC
// 9110 §5.3 allows.
func joinedValues(h *fasthttp.RequestHeader, name string) string {
	var b []byte
	for _, v := range h.PeekAll(name) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, v...)
	}
	return string(b)
}

// accessLog times each request, answers errors through handleErr so the
// status is final, stamps X-Process-Time, and, once the response is
// complete, writes one INFO line and updates the metrics. When the body
// streams from the upstream, completion is when the last byte has gone
// out (or the transfer broke), so duration_ms and bytes_out cover the whole
// transfer; X-Process-Time, sent before the body, is the time to the
// response headers, as in the original.
func accessLog(log *slog.Logger, m *metrics.Metrics, handleErr fiber.ErrorHandler, trusted *clientip.Resolver) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		m.InFlight.Inc()
		line := &accessLine{start: start, stats: originOf(c.Context(), trusted)}
		c.Locals(statsKey, &line.stats)
		if err := c.Next(); err != nil {
			if err := handleErr(c, err); err != nil {
				c.Status(fiber.StatusInternalServerError)
			}
		}
		// One clock reading serves X-Process-Time and, for a response
		// already complete, the access line.
		now := time.Now()
		var took [16]byte
		c.Response().Header.SetBytesV("X-Process-Time", appendMillis(took[:0], now.Sub(start)))

		in := &c.Request().Header
		line.requestID = strings.Clone(requestIDOf(c))
		// The standard methods as constants, saving a copy.
		if line.method = metrics.Method(c.Method()); line.method == metrics.OtherMethod {
			line.method = strings.Clone(c.Method())
		}
		line.path = string(c.Request().URI().PathOriginal())
		line.companyID = string(in.Peek("X-Company-ID"))
		if id, ok := IdentityOf(c); ok {
			// The token's, never the token itself.
			line.userID, line.companyID = id.UserID, id.CompanyID
		}
		line.traceID = traceID(in.Peek("Traceparent"))
		line.status = c.Response().StatusCode()
		if body, ok := c.Response().BodyStream().(*streamedBody); ok {
			body.done = func(n int64, upstreamErr, clientErr error) {
				line.finish(log, m, time.Now(), n, upstreamErr, clientErr)
			}
			return nil
		}
		line.finish(log, m, now, int64(len(c.Response().Body())), nil, nil)
		return nil
	}
}

// accessLine holds what the access log says about one request, its stats
// included, so that one allocation serves both. Its strings are copies:
// the line may be written after Fiber has reused the context.
type accessLine struct {
	requestID, method, path, companyID, userID, traceID string
	status                                              int
	start                                               time.Time
	stats                                               requestStats
}

// finish records the request, completed at now: metrics, then the log
// line. bytesOut is the response body bytes sent; upstreamErr or clientErr
// says why a streamed body broke off, and on which side.
func (l *accessLine) finish(log *slog.Logger, m *metrics.Metrics, now time.Time, bytesOut int64, upstreamErr, clientErr error) {
	elapsed := now.Sub(l.start)
	m.RequestCounter(l.method, l.status).Inc()
	m.RequestDuration.Observe(elapsed.Seconds())
	m.RequestBodyBytes.Add(float64(l.stats.bytesIn))
	m.ResponseBodyBytes.Add(float64(bytesOut))
	m.InFlight.Dec() // last: in flight 0 means every request is counted

	level, msg := slog.LevelInfo, "Request completed"
	var cause error
	switch {
	case upstreamErr != nil:
		m.UpstreamErrors.WithLabelValues(string(upstream.Classify(upstreamErr))).Inc()
		level, msg, cause = slog.LevelError, "Response body broken off", upstreamErr
	case clientErr != nil:
		m.UpstreamErrors.WithLabelValues("client_abort").Inc()
		level, msg, cause = slog.LevelError, "Response body broken off", clientErr
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("request_id", l.requestID),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.String("client_ip", l.stats.clientIP),
		slog.Int("status_code", l.status),
		slog.Float64("duration_ms", millis(elapsed)),
		slog.Float64("upstream_duration_ms", millis(l.stats.upstream)),
		slog.Int64("bytes_in", l.stats.bytesIn),
		slog.Int64("bytes_out", bytesOut),
		slog.String("company_id", l.companyID),
		slog.String("trace_id", l.traceID),
		{}, {}, {}, // user_id when known; error and broken_by, when it broke off
	}
	n := len(attrs) - 3
	if l.userID != "" {
		attrs[n] = slog.String("user_id", l.userID)
		n++
	}
	if cause != nil {
		brokenBy := "upstream"
		if upstreamErr == nil {
			brokenBy = "client"
		}
		attrs[n], attrs[n+1] = slog.String("error", cause.Error()), slog.String("broken_by", brokenBy)
		n += 2
	}
	_ = logging.LogAttrs(log, now, level, msg, attrs[:n]...)
}

// traceID returns the trace ID of a W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "" if there is none or it is
// malformed. The header itself passes upstream untouched.
func traceID(traceparent []byte) string {
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-' {
		return ""
	}
	id := traceparent[3:35]
	for _, b := range id {
		if unhex(b) < 0 || ('A' <= b && b <= 'F') {
			return ""
		}
	}
	if string(id) == "00000000000000000000000000000000" {
		return ""
	}
	return string(id)
}

// requestAttrs are the fields every log line about a request carries.
func requestAttrs(c *fiber.Ctx) []any {
	return []any{
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", c.Method()),
		slog.String("path", string(c.Request().URI().PathOriginal())),
		slog.String("client_ip", c.IP()),
	}
}

// millis is d in milliseconds, rounded down to two decimals.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()/10) / 100
}

// appendMillis appends d as the original's X-Process-Time: "12.34ms".
func appendMillis(dst []byte, d time.Duration) []byte {
	return append(strconv.AppendFloat(dst, millis(d), 'f', 2, 64), "ms"...)
}
