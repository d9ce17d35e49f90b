// Package auth decides whether a request's bearer token is good, and whose
// it is. It knows nothing of HTTP servers: routes hands it the value of the
// Authorization header and maps its answer to a status.
//
// Verification is golang-jwt/jwt/v5's; keys fetched from a JWKS URL are
// keyfunc/v3's (cached, refreshed on a schedule and, rate limited, on an
// unknown kid). No JOSE parsing or cryptography is written here.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// MaxTokenBytes bounds the Authorization header value the Verifier parses;
// a longer one is refused unread as malformed.
const MaxTokenBytes = 8 << 10

// Reason says why a token was refused. Its values are the fixed label set
// of gateway_auth_failures_total.
type Reason string

// The reasons a request is refused. All but ReasonNoCompany and
// ReasonKeysUnavailable are a 401.
const (
	ReasonMissing         Reason = "missing"          // no Authorization header
	ReasonMalformed       Reason = "malformed"        // not "Bearer <jwt>", bad base64 or JSON, too long
	ReasonSignature       Reason = "signature"        // bad signature, wrong or unknown key, disallowed alg
	ReasonExpired         Reason = "expired"          // exp passed
	ReasonNotYetValid     Reason = "not_yet_valid"    // nbf or iat in the future
	ReasonIssuer          Reason = "issuer"           // iss differs from GATEWAY_JWT_ISSUER
	ReasonAudience        Reason = "audience"         // aud lacks GATEWAY_JWT_AUDIENCE
	ReasonNoCompany       Reason = "no_company"       // valid token without the company claim: 403
	ReasonKeysUnavailable Reason = "keys_unavailable" // JWKS not loaded yet: 503
)

// Reasons lists every Reason, for metrics pre-created at zero.
var Reasons = []Reason{ReasonMissing, ReasonMalformed, ReasonSignature, ReasonExpired,
	ReasonNotYetValid, ReasonIssuer, ReasonAudience, ReasonNoCompany, ReasonKeysUnavailable}

// Failure is a refused token. Detail is safe to show the client.
type Failure struct {
	Reason Reason
	Detail string
}

func (f *Failure) Error() string { return string(f.Reason) + ": " + f.Detail }

// Identity is who a verified token speaks for.
type Identity struct {
	UserID    string
	CompanyID string
	Email     string
	// Expires is the token's exp, zero when it has none.
	Expires time.Time
}

// Config is what a Verifier is built from; routes fills it from config.Config.
type Config struct {
	Secret       []byte   // HMAC key; empty disables HS*
	JWKSURL      string   // empty disables asymmetric keys
	Algorithms   []string // accepted alg values
	Issuer       string
	Audience     string
	Leeway       time.Duration
	CompanyClaim string // dotted path
	UserClaim    string
	EmailClaim   string
	// JWKSRefresh is the scheduled refresh interval.
	JWKSRefresh time.Duration
	// UnknownKIDEvery is the least time between refreshes caused by a
	// token naming an unknown kid (and between retries while no key has
	// ever arrived). Default 10 s.
	UnknownKIDEvery time.Duration
	// HTTPClient fetches the JWKS; default a client with a 10 s timeout.
	HTTPClient *http.Client
	// OnFetch is called after each JWKS fetch with its error (nil: success).
	OnFetch func(err error)
	// CacheSize bounds how many verified tokens are remembered, so that
	// the same token is not checked again on every request (see
	// tokenCache). 0: no cache, every request verified in full.
	CacheSize int
	// Now is the clock of the cache; default time.Now.
	Now func() time.Time
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	jwks   keyfunc.Keyfunc // nil without JWKSURL
	loaded atomic.Bool     // a JWKS fetch has succeeded once
	hmac   map[string]bool
	cache  *tokenCache // nil without CacheSize
}

// New builds a Verifier. With a JWKS URL it starts fetching in the
// background until ctx ends; a key server that is down does not fail New:
// Verify answers ReasonKeysUnavailable until keys arrive.
func New(ctx context.Context, c Config) (*Verifier, error) {
	if len(c.Algorithms) == 0 {
		return nil, errors.New("auth: no algorithms")
	}
	if c.UnknownKIDEvery <= 0 {
		c.UnknownKIDEvery = 10 * time.Second
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	v := &Verifier{cfg: c, hmac: map[string]bool{}, cache: newTokenCache(c.CacheSize)}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(c.Algorithms),
		jwt.WithLeeway(c.Leeway),
		jwt.WithIssuedAt(),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	for _, a := range c.Algorithms {
		if strings.HasPrefix(a, "HS") {
			if len(c.Secret) == 0 {
				return nil, fmt.Errorf("auth: %s needs a secret", a)
			}
			v.hmac[a] = true
		} else if c.JWKSURL == "" {
			return nil, fmt.Errorf("auth: %s needs a JWKS URL", a)
		}
	}
	if c.JWKSURL != "" {
		client := c.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		counted := *client
		base := counted.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		counted.Transport = fetchCounter{base: base, v: v}
		noErr := true
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{c.JWKSURL}, keyfunc.Override{
			Client:                    &counted,
			NoErrorReturnFirstHTTPReq: &noErr,
			RefreshInterval:           c.JWKSRefresh,
			RefreshUnknownKID:         rate.NewLimiter(rate.Every(c.UnknownKIDEvery), 1),
			RateLimitWaitMax:          2 * time.Second, // bounds both the limiter wait and the fetch a request may trigger
			// Failures are reported through OnFetch, by fetchCounter.
			RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
				return func(context.Context, error) {}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", c.JWKSURL, err)
		}
		v.jwks = k
		go v.retryUntilLoaded(ctx)
	}
	return v, nil
}

// fetchCounter observes every JWKS fetch, scheduled or caused by an unknown kid.
type fetchCounter struct {
	base http.RoundTripper
	v    *Verifier
}

func (f fetchCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.base.RoundTrip(r)
	ferr := err
	if err == nil && resp.StatusCode/100 != 2 {
		ferr = fmt.Errorf("JWKS answered %s", resp.Status)
	}
	if ferr == nil {
		f.v.loaded.Store(true)
	}
	if f.v.cfg.OnFetch != nil {
		f.v.cfg.OnFetch(ferr)
	}
	return resp, err
}

// retryUntilLoaded asks for a key that does not exist, which makes the
// key set refresh (rate limited), until the first fetch succeeds: a key
// server down at start is retried without waiting for the schedule.
func (v *Verifier) retryUntilLoaded(ctx context.Context) {
	t := time.NewTicker(v.cfg.UnknownKIDEvery)
	defer t.Stop()
	for !v.loaded.Load() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = v.jwks.Storage().KeyRead(ctx, "\x00gateway-retry")
		}
	}
}

// KeysReady reports whether asymmetric keys can be checked (always true
// without a JWKS URL).
func (v *Verifier) KeysReady() bool { return v.jwks == nil || v.loaded.Load() }

func fail(r Reason, detail string) (Identity, *Failure) {
	return Identity{}, &Failure{Reason: r, Detail: detail}
}

// Verify checks the value of an Authorization header and returns the
// identity the token carries, or why it is refused.
func (v *Verifier) Verify(ctx context.Context, authorization string) (Identity, *Failure) {
	if authorization == "" {
		return fail(ReasonMissing, "Not authenticated")
	}
	if len(authorization) > MaxTokenBytes {
		return fail(ReasonMalformed, "Invalid token")
	}
	scheme, tok, ok := strings.Cut(authorization, " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return fail(ReasonMalformed, "Invalid authorization header")
	}
	var key [sha256.Size]byte
	if v.cache != nil {
		key = sha256.Sum256([]byte(tok))
		if id, ok := v.cache.get(key, v.cfg.Now()); ok {
			return id, nil
		}
	}
	id, f := v.verify(ctx, tok)
	if f == nil && v.cache != nil {
		v.cache.put(key, id, v.cfg.Now())
	}
	return id, f
}

// verify checks the signature and claims of a bearer token in full.
func (v *Verifier) verify(ctx context.Context, tok string) (Identity, *Failure) {
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		if v.hmac[alg] {
			// An HMAC key only for an HMAC alg: a public key never
			// becomes a secret.
			if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
				return v.cfg.Secret, nil
			}
			return nil, errors.New("alg mismatch")
		}
		if v.jwks == nil {
			return nil, errors.New("no key")
		}
		if !v.loaded.Load() {
			return nil, errKeysUnavailable
		}
		return v.jwks.KeyfuncCtx(ctx)(t)
	})
	if err != nil {
		return fail(reasonOf(err))
	}
	if !t.Valid {
		return fail(ReasonSignature, "Invalid token")
	}
	id := Identity{
		UserID:    claimString(claims, v.cfg.UserClaim),
		CompanyID: claimString(claims, v.cfg.CompanyClaim),
		Email:     claimString(claims, v.cfg.EmailClaim),
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Time
	}
	if id.CompanyID == "" {
		return fail(ReasonNoCompany, "Token carries no company")
	}
	return id, nil
}

var errKeysUnavailable = errors.New("signing keys not loaded yet")

func reasonOf(err error) (Reason, string) {
	switch {
	case errors.Is(err, errKeysUnavailable):
		return ReasonKeysUnavailable, "Authentication keys are not available yet"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed, "Invalid token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired, "Token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid, "Token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonIssuer, "Token has the wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonAudience, "Token has the wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return ReasonMalformed, "Invalid token claims"
	}
	return ReasonSignature, "Invalid token"
}

// claimString reads a dotted path as a string; numbers are formatted, any
// other type or a missing segment is "".
func claimString(claims map[string]any, path string) string {
	var cur any = claims
	for seg := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[seg]
	}
	switch x := cur.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// DevToken mints an HS256 token for local development (gateway token):
// the company at the companyClaim path, sub and email at the default claims, valid
// for ttl, signed with secret.
func DevToken(secret []byte, companyClaim, company, user, email string, ttl time.Duration) (string, error) {
	if len(secret) < 32 {
		return "", errors.New("auth: GATEWAY_JWT_SECRET must be at least 32 bytes")
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": user, "email": email, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	segs := strings.Split(companyClaim, ".")
	m := map[string]any(claims)
	for _, s := range segs[:len(segs)-1] {
		next := map[string]any{}
		m[s] = next
		m = next
	}
	m[segs[len(segs)-1]] = company
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
