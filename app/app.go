// Package app assembles the gateway from a Config: the upstream client, the
// Fiber application with its routes, and the server lifecycle, from
// listening to a graceful drain on shutdown. Tests build it with New and
// serve it on a 127.0.0.1:0 listener, exactly as main does.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atenex/gateway/admission"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/linger"
	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/metrics"
	"github.com/atenex/gateway/routes"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
)

const (
	// writeBufferSize lets a streamed download leave in 32 KiB writes.
	writeBufferSize = 32 << 10
	// prefetchLimit is how much of a request body fasthttp reads before
	// the handler runs, under the header timeout and before the body limit
	// can be checked. One byte: the whole body is read by the proxy, each
	// read under the body idle timeout, and an oversized body is refused
	// as soon as it starts.
	prefetchLimit = 1
)

// App is one gateway instance.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	fiber    *fiber.App
	admin    *http.Server
	upstream *fasthttp.HostClient
	// draining is set once shutdown has begun; /health then answers 503.
	draining atomic.Bool
	// handedOff counts responses written on connections the routes took
	// over from fasthttp, which its shutdown does not wait for.
	handedOff sync.WaitGroup
	// stopAuth ends the token verifier's JWKS refreshes.
	stopAuth context.CancelFunc
}

// New builds a gateway from cfg, which must come from config.Load (or be
// as valid). Nothing listens until Serve.
func New(cfg config.Config, log *slog.Logger) *App {
	a := &App{cfg: cfg, log: logging.Named(log, "gateway.app")}
	registry := prometheus.NewRegistry()
	m := metrics.New(registry)
	a.admin = &http.Server{Handler: adminMux(registry), ReadHeaderTimeout: 10 * time.Second}
	var conns *upstream.Conns // only listed for splicing downloads
	if cfg.Splice {
		conns = &upstream.Conns{}
	}
	a.upstream = upstream.NewClient(upstream.Options{
		URL:             cfg.IngestURL,
		Timeout:         cfg.UpstreamTimeout,
		ConnectTimeout:  cfg.UpstreamConnectTimeout,
		IdleConnTimeout: cfg.UpstreamIdleConnTimeout,
		MaxConns:        cfg.UpstreamMaxConns,
		PoolTimeout:     cfg.UpstreamPoolTimeout,
		Conns:           conns,
	})
	a.fiber = fiber.New(fiber.Config{
		AppName:               cfg.ProjectName,
		DisableStartupMessage: true,
		CaseSensitive:         true,
		StrictRouting:         true,
		// Both switches are needed for uploads to stream: without the
		// second, a multipart body is parsed into a form first.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		BodyLimit:                    prefetchLimit,
		// The read buffer holds the request line and headers, so its size
		// is the header limit: more is answered 431.
		ReadBufferSize:  int(cfg.MaxHeaderBytes),
		WriteBufferSize: writeBufferSize,
		// ReadTimeout covers the headers (and the prefetched start of the
		// body); the proxy then gives every read of the body, and every
		// write of a streamed response, ClientBodyIdleTimeout of its own.
		ReadTimeout:  cfg.ClientHeaderTimeout,
		WriteTimeout: cfg.ClientBodyIdleTimeout,
		IdleTimeout:  cfg.ClientIdleTimeout,
		Concurrency:  cfg.MaxClientConns,
		ErrorHandler: routes.ErrorHandler(log),
	})
	verifier, stopAuth := newVerifier(cfg, a.log, m)
	a.stopAuth = stopAuth
	// Idle keep-alive connections must not hold shutdown open.
	a.fiber.Server().CloseOnShutdown = true
	routes.Register(a.fiber, routes.Deps{
		ProjectName:    cfg.ProjectName,
		APIPrefix:      cfg.APIPrefix,
		AllowedOrigins: cfg.AllowedOrigins(),
		Upstream:       a.upstream,
		UpstreamHost:   cfg.IngestURL.Host,
		UpstreamTLS:    cfg.IngestURL.Scheme == "https",
		UpstreamConns:  conns,
		NoSplice:       !cfg.Splice,
		Health:         a.healthProblem,
		Logger:         log,

		MaxBodySize:           cfg.MaxBodySize,
		ClientBodyIdleTimeout: cfg.ClientBodyIdleTimeout,
		Admission: routes.Budgets{
			Requests:  newBudget(cfg, cfg.MaxInFlight, m.Admission(metrics.BudgetRequests)),
			Transfers: newBudget(cfg, cfg.MaxInFlightTransfers, m.Admission(metrics.BudgetTransfers)),
		},
		Metrics:            m,
		HandedOff:          &a.handedOff,
		Auth:               verifier,
		StripAuthorization: verifier != nil && !cfg.ForwardAuthorization,
	})
	return a
}

// standingQueue is how long an admission queue must stay non-empty to
// count as a standing queue of sustained overload rather than a burst: a
// burst of a few thousand small requests drains within it (3,000 at once
// take about 1.3 s on two shared cores).
const standingQueue = 2 * time.Second

// newBudget is one admission budget of limit requests at once.
func newBudget(cfg config.Config, limit int, m metrics.Budget) *admission.Limiter {
	return admission.New(admission.Options{
		Limit:     limit,
		MaxQueued: cfg.MaxQueued,
		Timeout:   cfg.QueueTimeout,
		Target:    cfg.QueueTargetDelay,
		Interval:  standingQueue,
		OnQueue:   func(d int) { m.Queue.Add(float64(d)) },
	})
}

// adminMux serves the operators' endpoints: Prometheus metrics and Go's
// profiler. It is only ever on the admin listener.
func adminMux(registry *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// healthProblem says why the gateway cannot take traffic, or "".
func (a *App) healthProblem() string {
	if a.draining.Load() {
		return "Gateway is shutting down."
	}
	return ""
}

// Listeners are the gateway's two sockets: the public one for the proxy,
// and the admin one for metrics and profiles.
type Listeners struct {
	Public, Admin net.Listener
}

// Listen opens the configured addresses, failing with a message that names
// the one that is taken.
func Listen(cfg config.Config) (Listeners, error) {
	public, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return Listeners{}, fmt.Errorf("listening on %s: %w", cfg.Addr(), err)
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr())
	if err != nil {
		public.Close()
		return Listeners{}, fmt.Errorf("listening on %s (admin): %w", cfg.AdminAddr(), err)
	}
	return Listeners{Public: public, Admin: admin}, nil
}

// Serve answers requests on ln until ctx is done, then drains: /health
// turns 503 at once, requests are still served for the shutdown delay,
// then it stops accepting, lets in-flight requests (uploads and downloads included)
// finish for up to the configured shutdown timeout, and closes the
// upstream client. It returns nil after a clean drain.
func (a *App) Serve(ctx context.Context, ls Listeners) error {
	defer a.stopAuth()
	opts := linger.DefaultOptions()
	opts.Time, opts.Timeout = a.cfg.LingeringTime, a.cfg.LingeringTimeout
	ln := linger.NewListener(ls.Public, opts)
	go a.admin.Serve(ls.Admin)
	defer a.admin.Close()
	a.log.Info("Gateway listening",
		slog.String("address", ln.Addr().String()),
		slog.String("admin_address", ls.Admin.Addr().String()),
		slog.String("ingest_service_url", a.cfg.IngestURL.String()),
		slog.String("log_level", a.cfg.LogLevel),
		slog.Float64("http_client_timeout_s", a.cfg.UpstreamTimeout.Seconds()))

	served := make(chan error, 1)
	go func() { served <- a.fiber.Listener(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	// Out of rotation first: /health answers 503 while requests are still
	// served, so load balancers stop routing here before the listener
	// closes. A second signal exits at once (see main).
	a.draining.Store(true)
	if d := a.cfg.ShutdownDelay; d > 0 {
		a.log.Info("Shutting down: failing health checks, still serving",
			slog.Float64("shutdown_delay_s", d.Seconds()))
		time.Sleep(d)
	}
	a.log.Info("Shutting down: draining in-flight requests",
		slog.Float64("shutdown_timeout_s", a.cfg.ShutdownTimeout.Seconds()))
	drainCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	err := a.fiber.ShutdownWithContext(drainCtx)
	// fasthttp does nothing if shutdown comes before it has started
	// serving; closing the listener makes a late start return at once.
	ln.Close()
	<-served
	if err == nil {
		err = waitGroup(drainCtx, &a.handedOff)
	}
	// Answers given early are still reaching their clients.
	if !ln.Wait(drainCtx.Done()) && err == nil {
		err = drainCtx.Err()
	}
	a.upstream.CloseIdleConnections()
	if err != nil {
		// The process is leaving either way; the cut-off requests are
		// what the operator needs to hear about.
		a.log.Warn("Shutdown timeout passed with requests still in flight; they are cut off",
			slog.String("error", err.Error()))
	}
	a.log.Info("Shutdown complete")
	return nil
}

// waitGroup waits for wg, or until ctx is done, and then says so.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
