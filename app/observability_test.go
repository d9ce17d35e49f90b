package app_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the admin listener's metrics as "name{labels}" → value.
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp := get(t, admin+"/metrics")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: got %d, want 200", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()
	refusing := startGateway(t, "http://"+closedPort, nil)

	for range 7 {
		resp := get(t, g.url+"/api/v1/ingest/ping")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range 3 {
		get(t, g.url+"/nope").Body.Close()
	}
	req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/sink", strings.NewReader(strings.Repeat("x", 5000)))
	if resp := do(t, req); resp.StatusCode != 200 {
		t.Errorf("POST /sink: got %d, want 200", resp.StatusCode)
	}
	resp := get(t, g.url+"/api/v1/ingest/blob?size=1000000")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for range 2 {
		get(t, refusing.url+"/api/v1/ingest/ping").Body.Close()
	}

	// A streamed response is counted once its last byte is out: poll.
	var got map[string]float64
	deadline := time.Now().Add(3 * time.Second)
	for {
		got = scrape(t, g.admin)
		if got[`gateway_http_requests_in_flight`] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]float64{
		`gateway_http_requests_total{code="200",method="GET"}`:  8 + 1, // 7 pings, 1 blob, 1 health check at start
		`gateway_http_requests_total{code="404",method="GET"}`:  3,
		`gateway_http_requests_total{code="200",method="POST"}`: 1,
		`gateway_http_requests_in_flight`:                       0,
		`gateway_request_body_bytes_total`:                      5000,
		`gateway_upstream_request_duration_seconds_count`:       9,
		`gateway_http_request_duration_seconds_count`:           13,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: got %v, want %v", name, got[name], v)
		}
	}
	if t.Failed() {
		for name, v := range got {
			if strings.HasPrefix(name, "gateway_") {
				t.Logf("scraped %s %v", name, v)
			}
		}
	}
	if out := got[`gateway_response_body_bytes_total`]; out < 1000000 {
		t.Errorf("gateway_response_body_bytes_total: got %v, want at least the 1000000-byte blob", out)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing: runtime and process collectors not registered", name)
		}
	}
	for name := range got {
		if strings.Contains(name, "/api/") || strings.Contains(name, "nope") {
			t.Errorf("a label carries a path: %s", name)
		}
	}

	refused := scrape(t, refusing.admin)
	if v := refused[`gateway_upstream_errors_total{kind="refused"}`]; v != 2 {
		t.Errorf(`gateway_upstream_errors_total{kind="refused"}: got %v, want 2`, v)
	}
	if v := refused[`gateway_http_requests_total{code="503",method="GET"}`]; v != 2 {
		t.Errorf(`requests_total{code="503"}: got %v, want 2`, v)
	}

	t.Run("not on the public port", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/debug/pprof/"} {
			resp := get(t, g.url+path)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("public %s: got %d, want 404", path, resp.StatusCode)
			}
		}
		resp := get(t, g.admin+"/debug/pprof/")
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("admin /debug/pprof/: got %d, want 200", resp.StatusCode)
		}
	})
}

func TestAccessLogAndTraceContext(t *testing.T) {
	m := startMock(t)
	g := startGateway(t, m.url, nil)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest/echo", strings.NewReader(strings.Repeat("b", 1234)))
	req.Header.Set("Traceparent", traceparent)
	req.Header.Set("Tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	req.Header.Set("Baggage", "userId=alice,serverNode=DF%2028")
	req.Header.Set("X-Company-ID", "company-7")
	req.Header.Set("X-Request-ID", "log-me")
	resp := do(t, req)
	var e echoed
	decode(t, resp, &e)
	for name, want := range map[string]string{
		"Traceparent": traceparent,
		"Tracestate":  "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
		"Baggage":     "userId=alice,serverNode=DF%2028",
	} {
		if got := e.Headers[name]; !slices.Equal(got, []string{want}) {
			t.Errorf("upstream %s: got %q, want %q untouched", name, got, want)
		}
	}

	line := g.logs.waitLine(t, 2*time.Second, func(l map[string]any) bool {
		return l["event"] == "Request completed" && l["request_id"] == "log-me"
	})
	for key, want := range map[string]any{
		"method": "POST", "path": "/api/v1/ingest/echo", "status_code": float64(200),
		"client_ip": "127.0.0.1", "company_id": "company-7", "bytes_in": float64(1234),
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "logger": "gateway.access", "level": "info",
	} {
		if line[key] != want {
			t.Errorf("%s: got %v, want %v", key, line[key], want)
		}
	}
	if out, _ := line["bytes_out"].(float64); out <= 0 {
		t.Errorf("bytes_out: got %v, want the echo's size", line["bytes_out"])
	}
	up, _ := line["upstream_duration_ms"].(float64)
	total, _ := line["duration_ms"].(float64)
	if up <= 0 || up > total {
		t.Errorf("upstream_duration_ms %v, duration_ms %v: want 0 < upstream ≤ total", up, total)
	}
}

// TestLabelledMetricsExistAtZero: a healthy gateway that has served
// nothing shows every fixed-label series at 0, not "no data" (issue 11
// item 8), and a refusal by admission is counted under its budget and
// reason.
func TestLabelledMetricsExistAtZero(t *testing.T) {
	g := startGateway(t, "http://127.0.0.1:1", nil)
	m := scrape(t, g.admin)
	want := []string{`gateway_admission_queue_length{budget="requests"}`, `gateway_admission_queue_length{budget="transfers"}`,
		`gateway_admission_wait_seconds_count{budget="requests"}`, `gateway_admission_wait_seconds_count{budget="transfers"}`,
		`gateway_rate_limited_total{key="client_ip"}`, `gateway_rate_limited_total{key="company"}`,
		`gateway_rate_limit_store_errors_total`, `gateway_rate_limit_store_duration_seconds_count`}
	for _, kind := range []string{"refused", "timeout", "reset", "bad_response", "pool_exhausted", "client_abort"} {
		want = append(want, `gateway_upstream_errors_total{kind="`+kind+`"}`)
	}
	for _, b := range []string{"requests", "transfers"} {
		for _, r := range []string{"queue_full", "queue_timeout"} {
			want = append(want, `gateway_admission_refusals_total{budget="`+b+`",reason="`+r+`"}`)
		}
	}
	for _, series := range want {
		v, ok := m[series]
		if !ok || v != 0 {
			t.Errorf("%s: %v (present %v), want 0 before any request", series, v, ok)
		}
	}
}
