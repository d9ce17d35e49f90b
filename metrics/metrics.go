// Package metrics defines the gateway's Prometheus metrics. Names follow
// Prometheus conventions (base units, _total counters, _seconds
// histograms), and every label has a small, fixed set of values: no label
// ever carries a raw path, an ID or anything else a client chooses, so the
// number of series stays bounded whatever the traffic.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the gateway's instruments. Build them with New; there is no
// package-level registry.
type Metrics struct {
	// Requests counts finished requests by method and status code.
	Requests *prometheus.CounterVec
	// RequestDuration is the time from a request's arrival to its last
	// response byte handed to the kernel.
	RequestDuration prometheus.Histogram
	// UpstreamDuration is the time from sending a request upstream to
	// receiving the ingest service's response headers.
	UpstreamDuration prometheus.Histogram
	// UpstreamErrors counts failed upstream exchanges by kind: refused,
	// timeout, reset, bad_response, pool_exhausted, client_abort.
	UpstreamErrors *prometheus.CounterVec
	// RateLimited counts requests refused 429 by the rate limit, by what
	// it counts per: client_ip or company.
	RateLimited *prometheus.CounterVec
	// InFlight is the number of requests being handled now.
	InFlight prometheus.Gauge
	// RequestBodyBytes and ResponseBodyBytes count body bytes passed
	// through, in each direction.
	RequestBodyBytes  prometheus.Counter
	ResponseBodyBytes prometheus.Counter
}

// New creates the instruments and registers them, with Go runtime and
// process collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	// Latency buckets from 1 ms to 5 min: small JSON requests and long
	// uploads both land in a bucket that tells them apart.
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total",
			Help: "HTTP requests answered, by method and status code.",
		}, []string{"method", "code"}),
		RequestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its last response byte.",
			Buckets: buckets,
		}),
		UpstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_upstream_request_duration_seconds",
			Help:    "Time from sending a request to the ingest service to its response headers.",
			Buckets: buckets,
		}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_errors_total",
			Help: "Failed exchanges with the ingest service, by kind.",
		}, []string{"kind"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limited_total",
			Help: "Requests refused by the rate limit, by what it counts per.",
		}, []string{"key"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		RequestBodyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_request_body_bytes_total",
			Help: "Request body bytes received from clients and passed upstream.",
		}),
		ResponseBodyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_response_body_bytes_total",
			Help: "Response body bytes sent to clients.",
		}),
	}
	for _, key := range []string{"client_ip", "company"} {
		m.RateLimited.WithLabelValues(key) // shown at 0 before the first refusal
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.UpstreamDuration, m.UpstreamErrors, m.RateLimited,
		m.InFlight, m.RequestBodyBytes, m.ResponseBodyBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Method returns the method label for m: the method itself for the
// standard ones, "OTHER" for anything a client made up. The result is
// always a constant, never m: the registry keeps label values for good,
// and m may alias a request buffer that is about to be reused.
func Method(m string) string {
	for _, known := range [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"} {
		if m == known {
			return known
		}
	}
	return "OTHER"
}

// Code returns the status code label.
func Code(status int) string {
	return strconv.Itoa(status)
}
