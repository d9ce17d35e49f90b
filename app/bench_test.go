package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/app"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/ratelimit/redistest"
	"github.com/valyala/fasthttp"
)

// benchGateway serves a gateway with production defaults (access log
// encoded, to io.Discard) in front of the mock ingest service, changed by
// edit if not nil.
func benchGateway(b *testing.B, edit ...func(*config.Config)) string {
	b.Helper()
	upstream := serveHTTP(b, ingestmock.New("/api/v1"))
	cfg := config.Default()
	cfg.IngestURL, _ = url.Parse(upstream)
	cfg.Host, cfg.Port, cfg.AdminPort = "127.0.0.1", 0, 0
	for _, e := range edit {
		e(&cfg)
	}
	a := app.New(cfg, logging.New(io.Discard, slog.LevelInfo))
	ls, err := app.Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ls) }()
	b.Cleanup(func() { cancel(); <-done })
	return ls.Public.Addr().String()
}

// benchClient is a keep-alive client to the gateway, as a load generator
// would use.
func benchClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: addr, MaxConns: 64, ReadTimeout: 30 * time.Second, StreamResponseBody: true}
}

// BenchmarkProxyGet is a small GET through the proxy: the request-rate case.
func BenchmarkProxyGet(b *testing.B) {
	benchGet(b, benchClient(benchGateway(b)))
}

// BenchmarkProxyGetRateLimited is BenchmarkProxyGet with a rate limit no
// request reaches, kept in memory and in Redis: the difference to
// BenchmarkProxyGet is what the limit costs a request.
func BenchmarkProxyGetRateLimited(b *testing.B) {
	limit := func(c *config.Config) {
		c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst = 1<<30, time.Second, 1<<30
	}
	b.Run("memory", func(b *testing.B) {
		benchGet(b, benchClient(benchGateway(b, limit)))
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		benchGet(b, benchClient(benchGateway(b, limit, func(c *config.Config) { c.RateLimitStore = srv.URL() })))
	})
}

func benchGet(b *testing.B, client *fasthttp.HostClient) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://gw/api/v1/ingest/ping")
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("got %d, %v", resp.StatusCode(), err)
			}
			io.Copy(io.Discard, resp.BodyStream())
			resp.CloseBodyStream()
		}
	})
}

// BenchmarkProxyPost1KiB is a 1 KiB JSON POST through the proxy.
func BenchmarkProxyPost1KiB(b *testing.B) {
	client := benchClient(benchGateway(b))
	body := []byte(`{"data":"` + strings.Repeat("x", 1024-11) + `"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://gw/api/v1/ingest/sink")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.SetBody(body)
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("got %d, %v", resp.StatusCode(), err)
			}
			io.Copy(io.Discard, resp.BodyStream())
			resp.CloseBodyStream()
		}
	})
}

// BenchmarkProxyStream64MiB uploads 64 MiB and downloads 64 MiB through
// the proxy, streamed both ways; MB/s is per direction.
func BenchmarkProxyStream64MiB(b *testing.B) {
	const size = 64 << 20
	client := benchClient(benchGateway(b))
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw/api/v1/ingest/sink")
		req.Header.SetMethod("POST")
		req.SetBodyStream(ingestmock.Pattern(size), size)
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("upload: got %d, %v", resp.StatusCode(), err)
		}
		io.Copy(io.Discard, resp.BodyStream())
		resp.CloseBodyStream()

		req.Reset()
		req.SetRequestURI("http://gw/api/v1/ingest/blob?size=67108864")
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("download: got %d, %v", resp.StatusCode(), err)
		}
		if n, err := io.Copy(io.Discard, resp.BodyStream()); err != nil || n != size {
			b.Fatalf("download: got %d bytes, %v", n, err)
		}
		resp.CloseBodyStream()
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
