package routes

import (
	"bytes"
	"context"

	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/metrics"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// The tenant headers the gateway sets from a verified token, after
// removing every copy the client sent.
var tenantHeaders = [...]string{"X-Company-ID", "X-User-ID", "X-User-Email"}

// identityKey is where a verified request's auth.Identity lives in Locals.
type identityKey struct{}

// IdentityOf returns the identity verified for this request, and false
// when authentication is off (or the request was not verified). Later
// middleware, such as a per-company rate limiter, reads it here or in the
// X-Company-ID header, which by then carries the token's company.
func IdentityOf(c *fiber.Ctx) (auth.Identity, bool) {
	id, ok := c.Locals(identityKey{}).(auth.Identity)
	return id, ok
}

// authStatus maps a refusal to its status and RFC 6750 challenge. A
// request with no credentials at all gets the bare challenge (§3.1: no
// error attribute when the request lacks authentication information);
// every bad token gets error="invalid_token". 403 for a token without a
// company carries error="insufficient_scope"; 503 while keys are not
// loaded carries no challenge, since the token may well be good.
func authStatus(f *auth.Failure) (status int, challenge string) {
	switch f.Reason {
	case auth.ReasonMissing:
		return fiber.StatusUnauthorized, `Bearer realm="gateway"`
	case auth.ReasonNoCompany:
		return fiber.StatusForbidden, `Bearer realm="gateway", error="insufficient_scope", error_description="token carries no company"`
	case auth.ReasonKeysUnavailable:
		return fiber.StatusServiceUnavailable, ""
	}
	return fiber.StatusUnauthorized, `Bearer realm="gateway", error="invalid_token"`
}

// requireToken verifies the bearer token of each proxied request. A
// refused request is answered at once, never proxied and its body never
// read; an accepted one has its tenant headers replaced by the token's
// and its identity stored for IdentityOf. A refusal is made from the
// headers alone (ErrorHandler readies its connection for the unread
// body). Methods the proxy answers 405 pass through unverified: that
// answer is the gateway's own.
func requireToken(v *auth.Verifier, m *metrics.Metrics, stripAuthorization bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !isAllowedMethod(c.Method()) {
			return c.Next()
		}
		in := &c.Request().Header
		id, verified := IdentityOf(c) // by the Expect check already
		var f *auth.Failure
		if !verified {
			id, f = v.Verify(c.UserContext(), string(in.Peek(fiber.HeaderAuthorization)))
		}
		if f != nil {
			m.AuthFailures.WithLabelValues(string(f.Reason)).Inc()
			status, challenge := authStatus(f)
			if challenge != "" {
				c.Set(fiber.HeaderWWWAuthenticate, challenge)
			}
			if status == fiber.StatusServiceUnavailable {
				c.Set(fiber.HeaderRetryAfter, "5")
			}
			return fiber.NewError(status, f.Detail) // ErrorHandler readies the connection
		}
		setTenant(in, id)
		if stripAuthorization {
			in.Del(fiber.HeaderAuthorization)
		}
		c.Locals(identityKey{}, id)
		return c.Next()
	}
}

// setTenant replaces every client-sent tenant header (all copies, any
// case) with the token's.
func setTenant(in *fasthttp.RequestHeader, id auth.Identity) {
	for _, h := range tenantHeaders {
		in.Del(h)
	}
	in.Set("X-Company-ID", id.CompanyID)
	if id.UserID != "" {
		in.Set("X-User-ID", id.UserID)
	}
	if id.Email != "" {
		in.Set("X-User-Email", id.Email)
	}
}

// refuseUnauthenticated is chained after next in Server.ExpectHandler: a
// proxied request with "Expect: 100-continue" and a bad token gets its 401
// (403, 503) instead of 100 Continue, so its body is never sent. A request
// next already refused is left alone.
func refuseUnauthenticated(next func(*fasthttp.RequestCtx) int, v *auth.Verifier, ingestPrefix string, m *metrics.Metrics, bare bareAnswerer) func(*fasthttp.RequestCtx) int {
	prefix := []byte(ingestPrefix)
	return func(ctx *fasthttp.RequestCtx) int {
		if code := next(ctx); code != fiber.StatusContinue {
			return code
		}
		if !bytes.HasPrefix(ctx.URI().PathOriginal(), prefix) || !isAllowedMethod(string(ctx.Method())) {
			return fiber.StatusContinue
		}
		id, f := v.Verify(context.Background(), string(ctx.Request.Header.Peek(fiber.HeaderAuthorization)))
		if f == nil {
			// The tenant is known now: a per-company rate limit chained
			// after this counts the verified company, not the claimed one;
			// requireToken takes the identity from here.
			setTenant(&ctx.Request.Header, id)
			ctx.SetUserValue(identityKey{}, id)
			return fiber.StatusContinue
		}
		m.AuthFailures.WithLabelValues(string(f.Reason)).Inc()
		status, challenge := authStatus(f)
		if challenge != "" {
			ctx.Response.Header.Set(fiber.HeaderWWWAuthenticate, challenge)
		}
		if status == fiber.StatusServiceUnavailable {
			ctx.Response.Header.Set(fiber.HeaderRetryAfter, "5")
		}
		return bare.refuseContinue(ctx, status, f.Detail)
	}
}
