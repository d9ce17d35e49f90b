// Package config turns the process environment into a validated Config.
//
// It keeps the original Python gateway's contract: settings are environment
// variables prefixed GATEWAY_ whose names are case-insensitive (pydantic's
// case_sensitive=False), plus the unprefixed PORT and HOST. Load is pure: it
// reads only the environment it is handed and reports every invalid value at
// once, so an operator fixes a broken Deployment in one round trip.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prefix is the prefix of every gateway setting except PORT and HOST.
const Prefix = "GATEWAY_"

// DefaultIngestServiceURL is where the ingest service lives inside the
// original cluster (namespace nyro-develop).
const DefaultIngestServiceURL = "http://ingest-api-service.nyro-develop.svc.cluster.local:80"

// Config is the gateway's whole configuration. The zero value is not useful:
// build one with Load, or start from Default in tests.
type Config struct {
	// ProjectName names the service in /, /health and logs.
	// GATEWAY_PROJECT_NAME, default "Atenex API Gateway (Simplified)".
	ProjectName string

	// APIPrefix is mounted in front of every proxied route and is also the
	// ingest service's own prefix: {APIPrefix}/ingest/x goes to {APIPrefix}/x.
	// GATEWAY_API_V1_STR, default "/api/v1".
	APIPrefix string

	// IngestURL is the ingest service. Only its scheme and host:port are
	// used; a path in it is ignored, as it was in the original.
	// GATEWAY_INGEST_SERVICE_URL, default DefaultIngestServiceURL.
	IngestURL *url.URL

	// LogLevel is one of DEBUG, INFO, WARNING, ERROR, CRITICAL (upper case).
	// GATEWAY_LOG_LEVEL, default "INFO", any case accepted.
	LogLevel string

	// UpstreamTimeout is an inactivity timeout: the ingest service must start
	// answering within it and may never go silent for longer while a request
	// or response body moves. A transfer that keeps moving is never cut.
	// GATEWAY_HTTP_CLIENT_TIMEOUT, seconds, default 60.
	UpstreamTimeout time.Duration

	// UpstreamConnectTimeout bounds dialing the ingest service.
	// GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT, seconds, default 15 (the
	// original's intended, never applied, connect timeout).
	UpstreamConnectTimeout time.Duration

	// UpstreamMaxConns caps open connections to the ingest service.
	// GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS, default 200.
	UpstreamMaxConns int

	// UpstreamMaxIdleConns is accepted for compatibility and validated
	// (0 ≤ n ≤ UpstreamMaxConns). fasthttp bounds idle connections by time,
	// not count: see UpstreamIdleConnTimeout.
	// GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS, default 100.
	UpstreamMaxIdleConns int

	// UpstreamIdleConnTimeout closes pooled connections unused for this long.
	// It must stay below the ingest service's own keep-alive timeout
	// (uvicorn: 5 s), or a reused connection may already be closed.
	// GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT, seconds, default 4.
	UpstreamIdleConnTimeout time.Duration

	// FrontendURL is the deployed frontend's origin, allowed by CORS in
	// addition to the local development origins.
	// GATEWAY_VERCEL_FRONTEND_URL, default unset.
	FrontendURL string

	// ShutdownTimeout is how long in-flight requests, uploads included, may
	// take to finish after SIGTERM before the gateway exits anyway.
	// GATEWAY_SHUTDOWN_TIMEOUT, seconds, default 30.
	ShutdownTimeout time.Duration

	// ShutdownDelay is how long the gateway keeps serving after SIGTERM,
	// with /health already answering 503, so that load balancers stop
	// sending it traffic before it stops accepting. Set it in Kubernetes.
	// GATEWAY_SHUTDOWN_DELAY, seconds, default 0.
	ShutdownDelay time.Duration

	// UpstreamPoolTimeout is how long a request waits for a free upstream
	// connection when all UpstreamMaxConns are busy, before 503.
	// GATEWAY_HTTP_CLIENT_POOL_TIMEOUT, seconds, default 5.
	UpstreamPoolTimeout time.Duration

	// MaxHeaderBytes bounds a request's line and headers; more is 431.
	// GATEWAY_MAX_HEADER_BYTES, bytes or "16KiB"-style, default 16 KiB.
	MaxHeaderBytes int64

	// MaxBodySize bounds a request body; more is 413, refused before the
	// body is read when Content-Length tells, cut off mid-stream otherwise.
	// GATEWAY_MAX_BODY_SIZE, bytes or "512MiB"-style, default 1 GiB, 0 = none.
	MaxBodySize int64

	// ClientHeaderTimeout is how long a client may take to send a request's
	// headers, from its first byte (or from connecting).
	// GATEWAY_CLIENT_HEADER_TIMEOUT, seconds, default 10.
	ClientHeaderTimeout time.Duration

	// ClientBodyIdleTimeout is the longest a client may leave an upload, or
	// a download it is receiving, without progress. A transfer that keeps
	// moving is never cut. GATEWAY_CLIENT_BODY_IDLE_TIMEOUT, seconds, default 60.
	ClientBodyIdleTimeout time.Duration

	// ClientIdleTimeout closes keep-alive connections idle this long.
	// GATEWAY_CLIENT_IDLE_TIMEOUT, seconds, default 75.
	ClientIdleTimeout time.Duration

	// MaxInFlight bounds small requests being proxied at once; beyond it a
	// request waits its turn in a queue (see MaxQueued).
	// GATEWAY_MAX_IN_FLIGHT, default 512.
	MaxInFlight int

	// MaxInFlightTransfers bounds long transfers at once, a budget of their
	// own: uploads with a chunked body or more than 1 MiB, and streamed
	// downloads. GATEWAY_MAX_IN_FLIGHT_TRANSFERS, default 512.
	MaxInFlightTransfers int

	// MaxQueued bounds the requests waiting for a slot, per budget; past it
	// a request is refused at once with 503 and Retry-After. 0 queues none.
	// GATEWAY_MAX_QUEUED, default 4096.
	MaxQueued int

	// QueueTimeout is the longest a request waits for a slot before 503.
	// GATEWAY_QUEUE_TIMEOUT, seconds, default 5.
	QueueTimeout time.Duration

	// QueueTargetDelay is the longest wait once the queue has stood
	// non-empty for two seconds (sustained overload, not a burst):
	// waiters older than it are refused, so the admitted keep short waits
	// (CoDel's target). GATEWAY_QUEUE_TARGET_DELAY, seconds, default 0.1;
	// 0 = plain FIFO up to QueueTimeout.
	QueueTargetDelay time.Duration

	// LingeringTime bounds how long a connection answered before the
	// client finished sending (413, 431, a refusal) is kept open, its
	// write side shut, reading and discarding what the client still
	// sends, so that the client reads the answer rather than a reset
	// (nginx's lingering_time). GATEWAY_LINGERING_TIME, seconds, default 30.
	LingeringTime time.Duration

	// LingeringTimeout ends that lingering once the client has sent
	// nothing for this long (nginx's lingering_timeout).
	// GATEWAY_LINGERING_TIMEOUT, seconds, default 5.
	LingeringTimeout time.Duration

	// MaxClientConns bounds open client connections; beyond it fasthttp
	// refuses new ones with 503. GATEWAY_MAX_CLIENT_CONNECTIONS, default 4096.
	MaxClientConns int

	// Splice moves large uploads and downloads socket to socket inside the
	// kernel (splice(2)) rather than through the gateway's memory, where
	// the system allows it. Off, every body is copied: for a host where
	// the ingest service shares the machine and its caches, on which the
	// copy can be the cheaper whole. GATEWAY_SPLICE, default true.
	Splice bool

	// AdminPort serves /metrics and /debug/pprof/ on Host, apart from the
	// public port so neither is ever exposed through the load balancer.
	// GATEWAY_ADMIN_PORT, default 9090; 0 picks a free port.
	AdminPort int

	// AuthMode is "none" (no authentication, the original's contract) or
	// "jwt": every proxied request needs a valid bearer token, and the
	// tenant headers are set from its claims. GATEWAY_AUTH_MODE, default "none".
	AuthMode string

	// JWTSecret is the HMAC key for HS256/384/512 tokens, at least 32 bytes.
	// GATEWAY_JWT_SECRET, default unset.
	JWTSecret string

	// JWKSURL is where RSA, ECDSA and Ed25519 public keys are fetched from.
	// GATEWAY_JWKS_URL, default unset. In jwt mode, JWTSecret, JWKSURL or
	// both must be set.
	JWKSURL string

	// JWTAlgorithms lists the accepted "alg" values, comma-separated in
	// canonical spelling ("HS256,RS256"); "none" never is. A string, not a
	// slice, so that Config stays comparable: see Algorithms.
	// GATEWAY_JWT_ALGORITHMS, default: HS256 when only a secret is set,
	// RS256,ES256 when only JWKS, all three with both.
	JWTAlgorithms string

	// JWTIssuer and JWTAudience are checked when set.
	// GATEWAY_JWT_ISSUER, GATEWAY_JWT_AUDIENCE, default unset.
	JWTIssuer   string
	JWTAudience string

	// JWTLeeway is the clock skew allowed on exp and nbf.
	// GATEWAY_JWT_LEEWAY, seconds, default 30.
	JWTLeeway time.Duration

	// JWTCompanyClaim, JWTUserClaim, JWTEmailClaim are dotted claim paths
	// ("app_metadata.company_id" for Supabase) read into X-Company-ID,
	// X-User-ID, X-User-Email. GATEWAY_JWT_COMPANY_CLAIM (default
	// "company_id"), GATEWAY_JWT_USER_CLAIM ("sub"), GATEWAY_JWT_EMAIL_CLAIM
	// ("email").
	JWTCompanyClaim string
	JWTUserClaim    string
	JWTEmailClaim   string

	// JWKSRefresh is how often the key set is fetched again.
	// GATEWAY_JWKS_REFRESH_INTERVAL, seconds, default 300.
	JWKSRefresh time.Duration

	// ForwardAuthorization sends the client's Authorization header on to
	// the ingest service. GATEWAY_FORWARD_AUTHORIZATION, default true.
	ForwardAuthorization bool

	// JWTCacheSize bounds how many verified tokens are remembered (until
	// their exp, at most 5 minutes) so that a client's repeated token is
	// not verified again on every request. GATEWAY_JWT_CACHE_SIZE, default
	// 10000; 0 verifies every request in full.
	JWTCacheSize int

	// Host and Port are where the gateway listens. HOST, default "0.0.0.0";
	// PORT, default 8080 (0 picks a free port).
	Host string
	Port int
}

// Default returns the configuration used when no variable is set.
func Default() Config {
	u, _ := url.Parse(DefaultIngestServiceURL)
	return Config{
		ProjectName:             "Atenex API Gateway (Simplified)",
		APIPrefix:               "/api/v1",
		IngestURL:               u,
		LogLevel:                "INFO",
		UpstreamTimeout:         60 * time.Second,
		UpstreamConnectTimeout:  15 * time.Second,
		UpstreamMaxConns:        200,
		UpstreamMaxIdleConns:    100,
		UpstreamIdleConnTimeout: 4 * time.Second,
		ShutdownTimeout:         30 * time.Second,
		UpstreamPoolTimeout:     5 * time.Second,
		MaxHeaderBytes:          16 << 10,
		MaxBodySize:             1 << 30,
		ClientHeaderTimeout:     10 * time.Second,
		ClientBodyIdleTimeout:   60 * time.Second,
		ClientIdleTimeout:       75 * time.Second,
		MaxInFlight:             512,
		MaxInFlightTransfers:    512,
		MaxQueued:               4096,
		QueueTimeout:            5 * time.Second,
		QueueTargetDelay:        100 * time.Millisecond,
		MaxClientConns:          4096,
		LingeringTime:           30 * time.Second,
		LingeringTimeout:        5 * time.Second,
		Splice:                  true,
		AdminPort:               9090,
		AuthMode:                "none",
		JWTLeeway:               30 * time.Second,
		JWTCompanyClaim:         "company_id",
		JWTUserClaim:            "sub",
		JWTEmailClaim:           "email",
		JWKSRefresh:             5 * time.Minute,
		ForwardAuthorization:    true,
		JWTCacheSize:            10000,
		Host:                    "0.0.0.0",
		Port:                    8080,
	}
}

// Addr is the listen address, host:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// AdminAddr is the admin listener's address, host:port.
func (c Config) AdminAddr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.AdminPort))
}

// Algorithms returns JWTAlgorithms as a list.
func (c Config) Algorithms() []string {
	if c.JWTAlgorithms == "" {
		return nil
	}
	return strings.Split(c.JWTAlgorithms, ",")
}

// AllowedOrigins lists the origins CORS lets in, credentials included.
func (c Config) AllowedOrigins() []string {
	// The frontend's local development server, always allowed by the original.
	origins := []string{"http://localhost:3000", "http://127.0.0.1:3000"}
	if c.FrontendURL != "" && !slices.Contains(origins, c.FrontendURL) {
		origins = append(origins, c.FrontendURL)
	}
	return origins
}

// Load builds a Config from environ, a list of KEY=value entries such as
// os.Environ(). A later entry overrides an earlier one with the same name,
// whatever its case, so callers put .env entries first and the process
// environment last. Unknown names are ignored. Every invalid value is
// reported, joined into one error.
func Load(environ []string) (Config, error) {
	env := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k = strings.ToUpper(k)
		if strings.HasPrefix(k, Prefix) || k == "PORT" || k == "HOST" {
			env[k] = v
		}
	}

	c := Default()
	p := parser{env: env}
	p.str("GATEWAY_PROJECT_NAME", &c.ProjectName, nonEmpty)
	p.str("GATEWAY_API_V1_STR", &c.APIPrefix, apiPrefix)
	p.url("GATEWAY_INGEST_SERVICE_URL", &c.IngestURL)
	p.str("GATEWAY_LOG_LEVEL", &c.LogLevel, logLevel)
	p.seconds("GATEWAY_HTTP_CLIENT_TIMEOUT", &c.UpstreamTimeout)
	p.seconds("GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT", &c.UpstreamConnectTimeout)
	p.seconds("GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT", &c.UpstreamIdleConnTimeout)
	p.integer("GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", &c.UpstreamMaxConns, 1, 1<<20)
	p.integer("GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", &c.UpstreamMaxIdleConns, 0, 1<<20)
	p.str("GATEWAY_VERCEL_FRONTEND_URL", &c.FrontendURL, origin)
	p.seconds("GATEWAY_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	p.secondsOrZero("GATEWAY_SHUTDOWN_DELAY", &c.ShutdownDelay)
	p.seconds("GATEWAY_HTTP_CLIENT_POOL_TIMEOUT", &c.UpstreamPoolTimeout)
	p.size("GATEWAY_MAX_HEADER_BYTES", &c.MaxHeaderBytes, 1<<10, 1<<20)
	p.size("GATEWAY_MAX_BODY_SIZE", &c.MaxBodySize, 0, 1<<50)
	p.seconds("GATEWAY_CLIENT_HEADER_TIMEOUT", &c.ClientHeaderTimeout)
	p.seconds("GATEWAY_CLIENT_BODY_IDLE_TIMEOUT", &c.ClientBodyIdleTimeout)
	p.seconds("GATEWAY_CLIENT_IDLE_TIMEOUT", &c.ClientIdleTimeout)
	p.integer("GATEWAY_MAX_IN_FLIGHT", &c.MaxInFlight, 1, 1<<20)
	p.integer("GATEWAY_MAX_IN_FLIGHT_TRANSFERS", &c.MaxInFlightTransfers, 1, 1<<20)
	p.integer("GATEWAY_MAX_QUEUED", &c.MaxQueued, 0, 1<<20)
	p.seconds("GATEWAY_QUEUE_TIMEOUT", &c.QueueTimeout)
	p.secondsOrZero("GATEWAY_QUEUE_TARGET_DELAY", &c.QueueTargetDelay)
	p.integer("GATEWAY_MAX_CLIENT_CONNECTIONS", &c.MaxClientConns, 1, 1<<20)
	p.seconds("GATEWAY_LINGERING_TIME", &c.LingeringTime)
	p.seconds("GATEWAY_LINGERING_TIMEOUT", &c.LingeringTimeout)
	p.boolean("GATEWAY_SPLICE", &c.Splice)
	p.str("HOST", &c.Host, host)
	p.integer("PORT", &c.Port, 0, 65535)
	p.integer("GATEWAY_ADMIN_PORT", &c.AdminPort, 0, 65535)
	if c.AdminPort == c.Port && c.Port != 0 {
		p.fail("GATEWAY_ADMIN_PORT", "must differ from PORT", strconv.Itoa(c.AdminPort))
	}

	p.auth(&c)

	if _, set := env["GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS"]; !set {
		// The default keep-alive pool follows a smaller connection cap.
		c.UpstreamMaxIdleConns = min(c.UpstreamMaxIdleConns, c.UpstreamMaxConns)
	}
	if c.UpstreamMaxIdleConns > c.UpstreamMaxConns {
		p.fail("GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", "must not exceed GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS ("+strconv.Itoa(c.UpstreamMaxConns)+")", env["GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS"])
	}
	return c, errors.Join(p.errs...)
}

// parser reads named variables into fields, collecting every problem.
type parser struct {
	env  map[string]string
	errs []error
}

func (p *parser) fail(name, rule, value string) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s, got %q", name, rule, value))
}

// str sets *dst to the normalized value when the variable is set and valid.
// check returns the normalized value, or a rule it broke.
func (p *parser) str(name string, dst *string, check func(string) (string, string)) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	norm, rule := check(v)
	if rule != "" {
		p.fail(name, rule, v)
		return
	}
	*dst = norm
}

func (p *parser) integer(name string, dst *int, lo, hi int) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be a whole number from %d to %d", lo, hi), v)
		return
	}
	*dst = n
}

// boolean accepts what pydantic does for a bool: true/false, 1/0, yes/no,
// on/off, t/f, y/n, in any case.
func (p *parser) boolean(name string, dst *bool) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on", "t", "y":
		*dst = true
	case "false", "0", "no", "off", "f", "n":
		*dst = false
	default:
		p.fail(name, "must be true or false", v)
	}
}

// seconds accepts a positive number of seconds; decimals are allowed so
// tests and impatient operators can ask for "0.5".
func (p *parser) seconds(name string, dst *time.Duration) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(f >= 0.001) || f > 365*24*3600 {
		p.fail(name, "must be a number of seconds from 0.001 up", v)
		return
	}
	*dst = time.Duration(f * float64(time.Second))
}

// secondsOrZero is seconds, but 0 (off) is allowed too.
func (p *parser) secondsOrZero(name string, dst *time.Duration) {
	if v, ok := p.env[name]; ok && strings.TrimSpace(v) == "0" {
		*dst = 0
		return
	}
	p.seconds(name, dst)
}

// size accepts a byte count, optionally with a unit: "1048576", "512KiB",
// "16 KB", "1GiB". KB/MB/GB are decimal, KiB/MiB/GiB binary, as in IEC.
func (p *parser) size(name string, dst *int64, lo, hi int64) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	n, err := ParseSize(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be a size from %d to %d bytes, such as 16KiB or 512MiB", lo, hi), v)
		return
	}
	*dst = n
}

// ParseSize reads a byte count with an optional unit (B, KB, KiB, MB, MiB,
// GB, GiB, TB, TiB; case-insensitive; K, M, G alone mean KiB, MiB, GiB).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit", s)
	}
	n, _ := strconv.ParseInt(s[:i], 10, 64)
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

func (p *parser) url(name string, dst **url.URL) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	u, err := url.Parse(strings.TrimSpace(v))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" || u.User != nil {
		p.fail(name, "must be an absolute http(s) URL such as http://ingest:8000", v)
		return
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.fail(name, "must have a port from 1 to 65535", v)
			return
		}
	}
	*dst = u
}

func nonEmpty(v string) (string, string) {
	if strings.TrimSpace(v) == "" {
		return "", "must not be empty"
	}
	return v, ""
}

// apiPrefix checks a path prefix the router can mount: it starts with a
// slash, does not end with one, and needs no escaping.
func apiPrefix(v string) (string, string) {
	const rule = `must be a path such as "/api/v1": starting with "/", not ending with "/", without spaces, "?", "#", "%", ":" or "*"`
	if len(v) < 2 || v[0] != '/' || v[len(v)-1] == '/' || strings.Contains(v, "//") {
		return "", rule
	}
	for _, r := range v {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`?#%:*\+`, r) {
			return "", rule
		}
	}
	return v, ""
}

func logLevel(v string) (string, string) {
	levels := []string{"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
	up := strings.ToUpper(strings.TrimSpace(v))
	if slices.Contains(levels, up) {
		return up, ""
	}
	return "", "must be one of " + strings.Join(levels, ", ")
}

// origin checks a CORS origin as browsers send it: scheme://host[:port].
// Fiber's CORS middleware panics on a malformed origin, so it is checked
// here. A trailing slash, as copied from a browser's address bar, is
// dropped; the Origin header never has one.
func origin(v string) (string, string) {
	const rule = "must be an origin such as https://app.example.com (scheme and host, no path)"
	v = strings.TrimSpace(v)
	if v == "" {
		return "", ""
	}
	v = strings.TrimSuffix(v, "/")
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return "", rule
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), ""
}

func host(v string) (string, string) {
	v = strings.TrimSpace(v)
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) ||
		(strings.ContainsAny(v, "/:?#") && net.ParseIP(v) == nil) {
		return "", "must be an IP address or host name to listen on"
	}
	return v, ""
}

// SupportedJWTAlgorithms are the values GATEWAY_JWT_ALGORITHMS may list.
var SupportedJWTAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

// auth reads the GATEWAY_AUTH_MODE and GATEWAY_JWT_* settings, and checks
// that jwt mode has a key to verify with and algorithms that key can serve.
func (p *parser) auth(c *Config) {
	p.str("GATEWAY_AUTH_MODE", &c.AuthMode, func(v string) (string, string) {
		v = strings.ToLower(strings.TrimSpace(v))
		if v != "none" && v != "jwt" {
			return "", "must be none or jwt"
		}
		return v, ""
	})
	p.str("GATEWAY_JWT_SECRET", &c.JWTSecret, func(v string) (string, string) {
		if v != "" && len(v) < 32 {
			return "", "must be at least 32 bytes"
		}
		return v, ""
	})
	if _, ok := p.env["GATEWAY_JWKS_URL"]; ok && strings.TrimSpace(p.env["GATEWAY_JWKS_URL"]) != "" {
		var u *url.URL
		p.url("GATEWAY_JWKS_URL", &u)
		if u != nil {
			c.JWKSURL = u.String()
		}
	}
	p.str("GATEWAY_JWT_ISSUER", &c.JWTIssuer, trimmed)
	p.str("GATEWAY_JWT_AUDIENCE", &c.JWTAudience, trimmed)
	p.secondsOrZero("GATEWAY_JWT_LEEWAY", &c.JWTLeeway)
	p.str("GATEWAY_JWT_COMPANY_CLAIM", &c.JWTCompanyClaim, claimPath)
	p.str("GATEWAY_JWT_USER_CLAIM", &c.JWTUserClaim, claimPath)
	p.str("GATEWAY_JWT_EMAIL_CLAIM", &c.JWTEmailClaim, claimPath)
	p.seconds("GATEWAY_JWKS_REFRESH_INTERVAL", &c.JWKSRefresh)
	p.boolean("GATEWAY_FORWARD_AUTHORIZATION", &c.ForwardAuthorization)
	p.integer("GATEWAY_JWT_CACHE_SIZE", &c.JWTCacheSize, 0, 1<<20)
	if v, ok := p.env["GATEWAY_JWT_ALGORITHMS"]; ok {
		var algs []string
		bad := false
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSpace(a)
			i := slices.IndexFunc(SupportedJWTAlgorithms, func(s string) bool { return strings.EqualFold(s, a) })
			if i < 0 {
				bad = true
				continue
			}
			if !slices.Contains(algs, SupportedJWTAlgorithms[i]) {
				algs = append(algs, SupportedJWTAlgorithms[i])
			}
		}
		if bad || len(algs) == 0 {
			p.fail("GATEWAY_JWT_ALGORITHMS", "must be a comma-separated list of "+strings.Join(SupportedJWTAlgorithms, ", ")+` ("none" is never accepted)`, v)
		} else {
			c.JWTAlgorithms = strings.Join(algs, ",")
		}
	}
	if c.AuthMode != "jwt" {
		return
	}
	if c.JWTSecret == "" && c.JWKSURL == "" {
		p.fail("GATEWAY_AUTH_MODE", "jwt needs GATEWAY_JWT_SECRET (at least 32 bytes) or GATEWAY_JWKS_URL", "jwt")
		return
	}
	if c.JWTAlgorithms == "" {
		var algs []string
		if c.JWTSecret != "" {
			algs = append(algs, "HS256")
		}
		if c.JWKSURL != "" {
			algs = append(algs, "RS256", "ES256")
		}
		c.JWTAlgorithms = strings.Join(algs, ",")
	}
	for _, a := range c.Algorithms() {
		if strings.HasPrefix(a, "HS") && c.JWTSecret == "" {
			p.fail("GATEWAY_JWT_ALGORITHMS", a+" needs GATEWAY_JWT_SECRET", c.JWTAlgorithms)
		}
		if !strings.HasPrefix(a, "HS") && c.JWKSURL == "" {
			p.fail("GATEWAY_JWT_ALGORITHMS", a+" needs GATEWAY_JWKS_URL", c.JWTAlgorithms)
		}
	}
}

func trimmed(v string) (string, string) { return strings.TrimSpace(v), "" }

// claimPath checks a dotted claim path such as "app_metadata.company_id".
func claimPath(v string) (string, string) {
	v = strings.TrimSpace(v)
	for seg := range strings.SplitSeq(v, ".") {
		if seg == "" || strings.ContainsFunc(seg, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", `must be a dotted claim path such as "company_id" or "app_metadata.company_id"`
		}
	}
	return v, ""
}
