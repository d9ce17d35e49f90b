package routes

import (
	"errors"
	"strconv"

	"github.com/atenex/gateway/admission"
	"github.com/atenex/gateway/metrics"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// largeBody is the size from which an upload counts against the transfer
// budget: past it a request is an upload that may hold its slot for
// minutes, not a small call.
const largeBody = 1 << 20

// Budgets are the two admission budgets: long transfers (uploads with a
// large or chunked body, streamed downloads) and everything else, so that
// 512 slow uploads can never make a status poll wait, nor the reverse.
type Budgets struct {
	Requests, Transfers *admission.Limiter
}

// admit holds each proxied request until its budget has a slot (see
// package admission), and refuses it with 503 and Retry-After when it has
// waited too long or the queue is full. A request that turns out to stream
// its response moves to the transfer budget if a transfer slot is free at
// once, and holds a slot until its last byte is out.
func admit(b Budgets, m *metrics.Metrics) fiber.Handler {
	requests := m.Admission(metrics.BudgetRequests)
	transfers := m.Admission(metrics.BudgetTransfers)
	return func(c *fiber.Ctx) error {
		lim, obs := b.Requests, requests
		if isTransfer(&c.Request().Header) {
			lim, obs = b.Transfers, transfers
		}
		wait, err := lim.Acquire()
		obs.Wait.Observe(wait.Seconds())
		if err != nil {
			if errors.Is(err, admission.ErrQueueFull) {
				obs.QueueFull.Inc()
			} else {
				obs.QueueTimeout.Inc()
			}
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds))
			return fiber.NewError(fiber.StatusServiceUnavailable, detailOverloaded)
		}
		handedOver := false
		defer func() { // deferred: a panic must free the slot too
			if !handedOver {
				lim.Release()
			}
		}()
		err = c.Next()
		if body, ok := c.Response().BodyStream().(*streamedBody); ok && err == nil {
			release := lim.Release
			if lim == b.Requests && b.Transfers.TryAcquire() {
				lim.Release()
				release = b.Transfers.Release
			}
			body.release = release
			handedOver = true
		}
		return err
	}
}

// isTransfer says a request's body makes it a long transfer.
func isTransfer(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n == -1 || n > largeBody
}
