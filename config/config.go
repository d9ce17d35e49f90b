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
		Host:                    "0.0.0.0",
		Port:                    8080,
	}
}

// Addr is the listen address, host:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
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
	p.str("HOST", &c.Host, host)
	p.integer("PORT", &c.Port, 0, 65535)

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

// seconds accepts a positive number of seconds; decimals are allowed so
// tests and impatient operators can ask for "0.5".
func (p *parser) seconds(name string, dst *time.Duration) {
	v, ok := p.env[name]
	if !ok {
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(f > 0) || f > 365*24*3600 {
		p.fail(name, "must be a positive number of seconds", v)
		return
	}
	*dst = time.Duration(f * float64(time.Second))
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
	if strings.ContainsAny(v, " /:?#") && net.ParseIP(v) == nil {
		return "", "must be an IP address or host name to listen on"
	}
	return v, ""
}
