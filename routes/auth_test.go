package routes

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/atenex/gateway/auth"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// FuzzAuthMiddleware sends any Authorization value through the real
// middleware chain on a real socket: never a panic, never a 5xx, and never
// a request that reaches the upstream without a good token.
func FuzzAuthMiddleware(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good, _ := auth.DevToken(secret, "company_id", "acme", "u", "e", time.Hour)
	for _, s := range []string{"", "Bearer " + good, "Bearer a.b.c", "bearer   x", "Basic x", "Bearer eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	v, err := auth.New(context.Background(), auth.Config{Secret: secret, Algorithms: []string{"HS256"},
		CompanyClaim: "company_id", UserClaim: "sub", EmailClaim: "email"})
	if err != nil {
		f.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(slog.New(slog.DiscardHandler)), DisableStartupMessage: true})
	Register(app, Deps{ProjectName: "x", APIPrefix: "/api/v1", Upstream: okUpstream{}, UpstreamHost: "up",
		Health: func() string { return "" }, Logger: slog.New(slog.DiscardHandler), ClientBodyIdleTimeout: time.Second, Auth: v, NoSplice: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go app.Listener(ln)
	f.Cleanup(func() { app.Shutdown() })
	client := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + ln.Addr().String() + "/api/v1/ingest/x"
	f.Fuzz(func(t *testing.T, h string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Skip()
		}
		req.Header["Authorization"] = []string{h}
		resp, err := client.Do(req)
		if err != nil {
			t.Skip() // net/http refused to send that header value
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("Authorization %q: status %d", h, resp.StatusCode)
		}
		_, f := v.Verify(context.Background(), h)
		if (resp.StatusCode == 200) != (f == nil) {
			t.Fatalf("Authorization %q: status %d, verifier says %v", h, resp.StatusCode, f)
		}
	})
}

// okUpstream answers every request 200 with an empty body.
type okUpstream struct{}

func (okUpstream) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	resp.SetStatusCode(200)
	return nil
}
