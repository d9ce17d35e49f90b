package routes_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atenex/gateway/logging"
	"github.com/atenex/gateway/routes"
	"github.com/atenex/gateway/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// buggyUpstream stands for a bug in the gateway: it panics on requests
// for /api/v1/boom and passes every other one to the real client.
type buggyUpstream struct{ real routes.Upstream }

func (b buggyUpstream) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	if bytes.HasPrefix(req.Header.RequestURI(), []byte("/api/v1/boom")) {
		panic("boom")
	}
	return b.real.Do(req, resp)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPanicIsRecovered checks that a panic while handling one request is
// answered 500 JSON, logged at error level with the request ID, and does
// not disturb a request in flight beside it.
func TestPanicIsRecovered(t *testing.T) {
	slowUpstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "slow and fine")
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slowUpstream.Serve(uln)
	defer slowUpstream.Close()
	u, _ := url.Parse("http://" + uln.Addr().String())

	logs := &lockedBuffer{}
	log := logging.New(logs, slog.LevelInfo)
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: routes.ErrorHandler(log)})
	routes.Register(app, routes.Deps{
		ProjectName: "test", APIPrefix: "/api/v1", Logger: log,
		Upstream: buggyUpstream{upstream.NewClient(upstream.Options{
			URL: u, Timeout: 5 * time.Second, ConnectTimeout: time.Second, IdleConnTimeout: time.Second, MaxConns: 10, PoolTimeout: time.Second,
		})},
		Health: func() string { return "" },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	base := "http://" + ln.Addr().String()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/api/v1/ingest/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	time.Sleep(50 * time.Millisecond)

	req, _ := http.NewRequest("GET", base+"/api/v1/ingest/boom", nil)
	req.Header.Set("X-Request-ID", "panic-request")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || string(body) != `{"detail":"Internal Server Error"}` {
		t.Errorf("got %d %s, want 500 {\"detail\":\"Internal Server Error\"}", resp.StatusCode, body)
	}
	if got := <-slow; got != "slow and fine" {
		t.Errorf("the request beside the panic: got %q, want %q", got, "slow and fine")
	}

	var logged bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["event"] == "Panic while handling request" {
			logged = m["level"] == "error" && m["request_id"] == "panic-request" && m["stack"] != nil
		}
	}
	if !logged {
		t.Errorf("no error-level panic line with the request ID and a stack in:\n%s", logs)
	}
}
