package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/app"
	"github.com/atenex/gateway/auth/authtest"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/ratelimit/redistest"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// benchGateway serves a gateway with production defaults (access log
// encoded, to io.Discard) in front of the mock ingest service, changed by
// edits.
func benchGateway(b *testing.B, edits ...func(*config.Config)) string {
	b.Helper()
	upstream := serveHTTP(b, ingestmock.New("/api/v1"))
	cfg := config.Default()
	cfg.IngestURL, _ = url.Parse(upstream)
	cfg.Host, cfg.Port, cfg.AdminPort = "127.0.0.1", 0, 0
	for _, e := range edits {
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
	benchGet(b, benchClient(benchGateway(b)), "")
}

// BenchmarkProxyGetRateLimited is BenchmarkProxyGet with a rate limit no
// request reaches, kept in memory and in Redis: the difference to
// BenchmarkProxyGet is what the limit costs a request.
func BenchmarkProxyGetRateLimited(b *testing.B) {
	limit := func(c *config.Config) {
		c.RateLimitCount, c.RateLimitPeriod, c.RateLimitBurst = 1<<30, time.Second, 1<<30
	}
	b.Run("memory", func(b *testing.B) {
		benchGet(b, benchClient(benchGateway(b, limit)), "")
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		benchGet(b, benchClient(benchGateway(b, limit, func(c *config.Config) { c.RateLimitStore = srv.URL() })), "")
	})
}

// benchGet sends small GETs through client in parallel, with this
// Authorization when not empty.
func benchGet(b *testing.B, client *fasthttp.HostClient, authorization string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI("http://gw/api/v1/ingest/ping")
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("got %d, %v", resp.StatusCode(), err)
			}
			io.Copy(io.Discard, resp.BodyStream())
			resp.CloseBodyStream()
		}
	})
}

// BenchmarkProxyGetJWT is BenchmarkProxyGet in jwt mode: what verifying
// the token adds to a whole proxied request, for each algorithm, with
// every request verified in full and with the token cache (each client
// goroutine reusing its token, as a browser does).
func BenchmarkProxyGetJWT(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks := authtest.StartKeyServer(b)
	ks.Set(map[string]any{"r1": &rsaKey.PublicKey, "e1": &ecKey.PublicKey})
	toks := []struct {
		name string
		tok  string
	}{
		{"HS256", authtest.Sign(b, jwt.SigningMethodHS256, []byte(testSecret), "", claims(nil))},
		{"RS256", authtest.Sign(b, jwt.SigningMethodRS256, rsaKey, "r1", claims(nil))},
		{"ES256", authtest.Sign(b, jwt.SigningMethodES256, ecKey, "e1", claims(nil))},
	}
	for _, cache := range []struct {
		name string
		size int
	}{{"full", 0}, {"cached", 10000}} {
		client := benchClient(benchGateway(b, jwksMode(ks.URL), func(c *config.Config) { c.JWTCacheSize = cache.size }))
		for _, tc := range toks {
			b.Run(tc.name+"/"+cache.name, func(b *testing.B) {
				authz := "Bearer " + tc.tok
				deadline := time.Now().Add(5 * time.Second)
				for !proxiedOK(client, authz) { // until the first key set has arrived
					if time.Now().After(deadline) {
						b.Fatal("the gateway never accepted the token")
					}
					time.Sleep(10 * time.Millisecond)
				}
				benchGet(b, client, authz)
			})
		}
	}
}

// proxiedOK reports whether a GET with this Authorization is proxied.
func proxiedOK(client *fasthttp.HostClient, authz string) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gw/api/v1/ingest/ping")
	req.Header.Set("Authorization", authz)
	err := client.Do(req, resp)
	if err == nil {
		io.Copy(io.Discard, resp.BodyStream())
		resp.CloseBodyStream()
	}
	return err == nil && resp.StatusCode() == 200
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
