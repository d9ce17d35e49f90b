// Package routes is the gateway's HTTP surface: every route, the middleware
// that wraps them, the proxy to the ingest service, and the one place that
// turns failures into {"detail": "..."} answers.
package routes

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/atenex/gateway/admission"
	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/clientip"
	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/ratelimit"
	"github.com/atenex/gateway/splice"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Upstream sends one request to the ingest service. *fasthttp.HostClient
// is the real one.
type Upstream interface {
	Do(req *fasthttp.Request, resp *fasthttp.Response) error
}

// Deps is everything the routes need, handed in by the app.
type Deps struct {
	// ProjectName names the service in / and /health.
	ProjectName string
	// APIPrefix is the gateway's and the ingest service's path prefix,
	// such as "/api/v1".
	APIPrefix string
	// AllowedOrigins are the CORS origins allowed with credentials.
	AllowedOrigins []string
	// Upstream carries proxied requests.
	Upstream Upstream
	// UpstreamHost is the ingest service's host[:port], the Host header for
	// clients that send none.
	UpstreamHost string
	// UpstreamTLS says the ingest service is reached over https: the
	// upstream request must say so, and bodies are copied, not spliced.
	UpstreamTLS bool
	// UpstreamConns finds the upstream connection a response arrived on,
	// to splice large downloads; nil: downloads are copied.
	UpstreamConns *upstream.Conns
	// NoSplice copies every body, even where splice(2) would work.
	NoSplice bool
	// Health reports whether the gateway can serve: "" when it can, or why
	// not. /health answers 503 with that reason otherwise.
	Health func() string
	// TrustedProxies says whose X-Forwarded-* to believe; nil: nobody's.
	TrustedProxies *clientip.Resolver
	// Logger receives the access log and errors.
	Logger *slog.Logger

	// MaxBodySize bounds request bodies (0: no bound).
	MaxBodySize int64
	// ClientBodyIdleTimeout is the longest a client may leave an upload or
	// a download without progress.
	ClientBodyIdleTimeout time.Duration
	// Admission holds the budgets of requests proxied at once. The zero
	// value admits 512 of each kind and queues none.
	Admission Budgets
	// Auth verifies the bearer token of every proxied request and sets the
	// tenant headers from it. Nil: authentication off, headers untouched.
	Auth *auth.Verifier
	// StripAuthorization keeps the client's Authorization header from the
	// ingest service (GATEWAY_FORWARD_AUTHORIZATION=false, jwt mode only).
	StripAuthorization bool
	// RateLimit, when not nil, limits each client (or each company, with
	// RateLimitByCompany) on the proxied routes: over it, 429.
	RateLimit          ratelimit.Limiter
	RateLimitByCompany bool
	// Metrics receives every request's measurements. Nil means none kept.
	Metrics *metrics.Metrics
	// HandedOff counts responses being written on connections taken over
	// from fasthttp (an HTTP/1.0 client's body of unknown length): the
	// server's shutdown does not wait for those, so whoever drains must.
	// Nil: not counted.
	HandedOff *sync.WaitGroup
}

// Register mounts the middleware and routes on app, outermost first. The
// order matters: the access log wraps everything so that every answer,
// CORS preflights and errors included, gets X-Process-Time, X-Request-ID
// and a log line.
func Register(app *fiber.App, d Deps) {
	if d.Metrics == nil {
		d.Metrics = metrics.New(prometheus.NewRegistry())
	}
	// The auth failure series exist at 0, auth on or off (the reasons
	// are package auth's to name).
	for _, r := range auth.Reasons {
		d.Metrics.AuthFailures.WithLabelValues(string(r))
	}
	if d.Admission.Requests == nil {
		d.Admission.Requests = admission.New(admission.Options{Limit: 512})
	}
	if d.Admission.Transfers == nil {
		d.Admission.Transfers = admission.New(admission.Options{Limit: 512})
	}
	access := logging.Named(d.Logger, "gateway.access")
	app.Use(accessLog(access, d.Metrics, ErrorHandler(d.Logger), d.TrustedProxies))
	app.Use(screenRequest)
	app.Use(requestid.New(requestid.Config{
		Header:     fiber.HeaderXRequestID,
		Generator:  newRequestID,
		ContextKey: requestIDKey,
	}))
	app.Use(recover.New(recover.Config{
		EnableStackTrace:  true,
		StackTraceHandler: logPanic(d.Logger),
	}))
	// With no origin listed, Fiber's CORS would allow every origin ("*"),
	// and panic on that combined with credentials: no CORS at all instead.
	if len(d.AllowedOrigins) > 0 {
		app.Use(cors.New(cors.Config{
			AllowOrigins:     strings.Join(d.AllowedOrigins, ","),
			AllowCredentials: true,
			AllowMethods:     "GET,POST,PUT,DELETE,PATCH,OPTIONS,HEAD",
			AllowHeaders:     "", // echo what the preflight asks for: any header
			ExposeHeaders:    "X-Request-ID,X-Process-Time",
		}))
	}

	app.Get("/", root(d.ProjectName))
	app.Get("/health", health(d.ProjectName, d.Health))

	ingest := d.APIPrefix + "/ingest"
	app.All(ingest, addSlash)
	p := &proxy{
		upstream:     d.Upstream,
		upstreamHost: d.UpstreamHost,
		prefix:       d.APIPrefix,
		cut:          len(ingest) + 1,
		maxBody:      d.MaxBodySize,
		clientIdle:   d.ClientBodyIdleTimeout,
		upstreamTLS:  d.UpstreamTLS,
		log:          logging.Named(d.Logger, "gateway.proxy"),
		metrics:      d.Metrics,
		chunks:       newChunkPool(),
		handedOff:    d.HandedOff,
	}
	if splice.Supported && !d.UpstreamTLS && !d.NoSplice {
		pipes := splice.NewPipes(largePipes)
		// Each direction needs one read of chunkSize to empty fasthttp's
		// read buffer for the socket it splices from.
		if readBufferSize(app) <= chunkSize {
			p.uploadPipes = pipes
		}
		if d.UpstreamConns != nil && upstream.ReadBufferSize <= chunkSize {
			p.downloads = &downloadSplice{pipes: pipes, conns: d.UpstreamConns, connWriter: connBodyWriter()}
		}
	}
	// Token first, then the rate limit (per company it counts the
	// verified company), then admission: a request refused by either
	// never takes a slot, nor waits in the queue for one.
	ingestChain := []fiber.Handler{admit(d.Admission, d.Metrics), p.handle}
	var limiter *rateLimiter
	if d.RateLimit != nil {
		limiter = &rateLimiter{limit: d.RateLimit, byCompany: d.RateLimitByCompany, trusted: d.TrustedProxies, metrics: d.Metrics}
		ingestChain = append([]fiber.Handler{limiter.handler()}, ingestChain...)
	}
	if d.Auth != nil {
		ingestChain = append([]fiber.Handler{requireToken(d.Auth, d.Metrics, d.StripAuthorization)}, ingestChain...)
	}
	app.All(ingest+"/*", ingestChain...)

	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })

	// Requests that never reach the routes above: malformed ones, and ones
	// with methods Fiber does not know.
	srv := app.Server()
	bare := bareAnswerer{log: access, metrics: d.Metrics}
	srv.ErrorHandler = serverErrorHandler(bare)
	srv.Handler = knownMethodsOnly(srv.Handler, ingest+"/", bare)
	srv.ExpectHandler = refuseLargeBodies(d.MaxBodySize, bare)
	// Each check runs after the ones it wraps: body size, token, rate.
	if d.Auth != nil {
		srv.ExpectHandler = refuseUnauthenticated(srv.ExpectHandler, d.Auth, ingest+"/", d.Metrics, bare)
	}
	if limiter != nil {
		srv.ExpectHandler = limiter.expect(srv.ExpectHandler, ingest+"/", bare)
	}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s fasthttp.ConnState) {
		if prev != nil {
			prev(c, s)
		}
		if s == fasthttp.StateClosed {
			p.connClosed(c)
		}
	}
}

// largePipes is how many transfers at once, uploads and downloads alike,
// are spliced through 1 MiB pipes (splice.Pipes): 16 MiB of the kernel's
// 64 MiB per-user default, the rest left to other processes of the same
// user. Transfers past it, such as those of slow clients that hold theirs
// for long, get the default 64 KiB pipe.
const largePipes = 16

// connBodyWriter returns the type of writer fasthttp hands the body stream
// of a response of known length when it writes the response to a
// connection, found by writing one. (Response.WriteTo and String write
// through the same type: they are never called on a proxied response.)
func connBodyWriter() reflect.Type {
	var probe writerProbe
	var resp fasthttp.Response
	resp.ImmediateHeaderFlush = true
	resp.SetBodyStream(&probe, 1)
	resp.Write(bufio.NewWriter(io.Discard))
	return probe.seen
}

// writerProbe is a one-byte body stream that records the writer its
// WriteTo is given.
type writerProbe struct{ seen reflect.Type }

func (p *writerProbe) Read([]byte) (int, error) { return 0, io.EOF }

func (p *writerProbe) WriteTo(w io.Writer) (int64, error) {
	p.seen = reflect.TypeOf(w)
	n, err := w.Write([]byte{0})
	return int64(n), err
}

func (p *writerProbe) SupportsBodyWriteTo() bool { return true }

// readBufferSize is the size of fasthttp's read buffer for each client
// connection, which its request body stream reads through.
func readBufferSize(app *fiber.App) int {
	if n := app.Config().ReadBufferSize; n > 0 {
		return n
	}
	return 4096 // fasthttp's default
}
