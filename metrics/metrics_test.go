package metrics_test

import (
	"strings"
	"testing"

	"github.com/atenex/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMethodLabelIsBounded(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"GET", "GET"}, {"PATCH", "PATCH"}, {"PROPFIND", "OTHER"}, {"get", "OTHER"}, {strings.Repeat("X", 1000), "OTHER"},
	} {
		if got := metrics.Method(tt.in); got != tt.want {
			t.Errorf("Method(%.20q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRequestCounter holds that the kept counters are the vector's own
// series, labelled as before, for standard and made-up methods and for
// codes inside and outside the range kept, and that a series appears only
// once counted in.
func TestRequestCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	if n := len(requestSeries(t, reg)); n != 0 {
		t.Fatalf("before any request: got %d series, want 0", n)
	}
	for _, tt := range []struct {
		method      string
		status      int
		label, code string
	}{
		{"GET", 200, "GET", "200"},
		{"GET", 200, "GET", "200"},
		{"TRACE", 599, "TRACE", "599"},
		{"PROPFIND", 100, "OTHER", "100"},
		{"BREW", 100, "OTHER", "100"},
		{"POST", 99, "POST", "99"},
		{"POST", 600, "POST", "600"},
		{"POST", 999, "POST", "999"},
	} {
		key := tt.label + " " + tt.code
		before := requestSeries(t, reg)[key]
		m.RequestCounter(tt.method, tt.status).Inc()
		if got := requestSeries(t, reg)[key]; got != before+1 {
			t.Errorf("%s %d: {method=%q, code=%q} got %v, want %v", tt.method, tt.status, tt.label, tt.code, got, before+1)
		}
	}
	if got, want := len(requestSeries(t, reg)), 6; got != want {
		t.Errorf("got %d series, want %d", got, want)
	}
}

// requestSeries gathers gateway_http_requests_total from reg, by
// "method code".
func requestSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "gateway_http_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			series[labels["method"]+" "+labels["code"]] = s.GetCounter().GetValue()
		}
	}
	return series
}

func TestNewRegistersEverything(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Requests.WithLabelValues("GET", "200").Inc()
	m.UpstreamErrors.WithLabelValues("refused").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{
		"gateway_http_requests_total", "gateway_http_request_duration_seconds",
		"gateway_upstream_request_duration_seconds", "gateway_upstream_errors_total",
		"gateway_http_requests_in_flight", "gateway_request_body_bytes_total",
		"gateway_response_body_bytes_total", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !names[want] {
			t.Errorf("%s not registered", want)
		}
	}
}

// BenchmarkPerRequest is what the gateway records for each proxied
// request, to compare with the tens of microseconds a request costs: on
// one core, and from every core at once (where the shared counters'
// cache lines bounce between cores).
func BenchmarkPerRequest(b *testing.B) {
	record := func(m *metrics.Metrics) {
		m.InFlight.Inc()
		m.UpstreamDuration.Observe(0.0012)
		m.RequestCounter("GET", 200).Inc()
		m.RequestDuration.Observe(0.0015)
		m.RequestBodyBytes.Add(0)
		m.ResponseBodyBytes.Add(15)
		m.InFlight.Dec()
	}
	b.Run("serial", func(b *testing.B) {
		m := metrics.New(prometheus.NewRegistry())
		b.ReportAllocs()
		for range b.N {
			record(m)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		m := metrics.New(prometheus.NewRegistry())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				record(m)
			}
		})
	})
}
