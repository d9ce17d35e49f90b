package routes

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// accessLog times each request, answers errors through handleErr so the
// status is final, stamps X-Process-Time, and writes one INFO line per
// completed request. When the body streams from the upstream, the line is
// written when the last byte has gone out (or the transfer broke), so
// duration_ms covers the whole transfer; X-Process-Time, sent before the
// body, is the time to the response headers, as in the original.
func accessLog(log *slog.Logger, handleErr fiber.ErrorHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			if err := handleErr(c, err); err != nil {
				c.Status(fiber.StatusInternalServerError)
			}
		}
		c.Response().Header.Set("X-Process-Time", formatMillis(time.Since(start)))

		line := accessLine{
			requestID: strings.Clone(requestIDOf(c)),
			method:    c.Method(),
			path:      string(c.Request().URI().PathOriginal()),
			clientIP:  c.IP(),
			companyID: string(c.Request().Header.Peek("X-Company-ID")),
			status:    c.Response().StatusCode(),
			start:     start,
		}
		if body, ok := c.Response().BodyStream().(*streamedBody); ok {
			body.done = func(err error) { line.write(log, err) }
			return nil
		}
		line.write(log, nil)
		return nil
	}
}

// accessLine holds what the access log says about one request. Its strings
// are copies: the line may be written after Fiber has reused the context.
type accessLine struct {
	requestID, method, path, clientIP, companyID string
	status                                       int
	start                                        time.Time
}

func (l *accessLine) write(log *slog.Logger, err error) {
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs,
		slog.String("request_id", l.requestID),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.String("client_ip", l.clientIP),
		slog.Int("status_code", l.status),
		slog.Float64("duration_ms", millis(time.Since(l.start))),
	)
	if l.companyID != "" {
		attrs = append(attrs, slog.String("company_id", l.companyID))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		log.LogAttrs(context.Background(), slog.LevelError, "Response body broken off", attrs...)
		return
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "Request completed", attrs...)
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

// formatMillis renders d as the original's X-Process-Time: "12.34ms".
func formatMillis(d time.Duration) string {
	return strconv.FormatFloat(millis(d), 'f', 2, 64) + "ms"
}
