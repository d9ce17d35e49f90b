// Package metrics defines the gateway's Prometheus metrics. Names follow
// Prometheus conventions (base units, _total counters, _seconds
// histograms), and every label has a small, fixed set of values: no label
// ever carries a raw path, an ID or anything else a client chooses, so the
// number of series stays bounded whatever the traffic.
package metrics

import (
	"strconv"
	"sync/atomic"

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
	// RateLimitStoreErrors counts rate-limit decisions the shared store
	// failed to make in time (Redis down, slow or refusing).
	RateLimitStoreErrors prometheus.Counter
	// RateLimitStoreDuration is the time one decision took in the shared
	// store, a round trip to Redis, failed or not.
	RateLimitStoreDuration prometheus.Histogram
	// InFlight is the number of requests being handled now.
	InFlight prometheus.Gauge
	// RequestBodyBytes and ResponseBodyBytes count body bytes passed
	// through, in each direction.
	RequestBodyBytes  prometheus.Counter
	ResponseBodyBytes prometheus.Counter

	// AdmissionQueueLength, AdmissionWait and AdmissionRefusals follow the
	// admission queues, per budget (BudgetRequests, BudgetTransfers):
	// requests waiting now, how long each waited (refused or not), and
	// refusals by reason (queue_full, queue_timeout).
	AdmissionQueueLength *prometheus.GaugeVec
	AdmissionWait        *prometheus.HistogramVec
	AdmissionRefusals    *prometheus.CounterVec
	// AuthFailures counts refused tokens by reason (package auth's
	// Reasons; routes.Register creates each at 0).
	AuthFailures *prometheus.CounterVec
	// JWKSFetches counts key set fetches by result: ok or error.
	JWKSFetches *prometheus.CounterVec

	// requests holds Requests' counters by method and status code once
	// looked up (see RequestCounter).
	requests [len(methods) + 1][maxCode - minCode]atomic.Pointer[counter]
}

// counter boxes a prometheus.Counter for an atomic.Pointer.
type counter struct{ prometheus.Counter }

// The status codes whose request counters RequestCounter keeps.
const minCode, maxCode = 100, 600

// methods are the method label's values besides OTHER.
var methods = [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"}

// RequestCounter returns the Requests counter of a request with this
// method and status. Looking it up in the vector hashes both label values
// and formats the code on every call, an allocation per request; so each
// counter is looked up once and then kept. A series still appears only
// once a request has counted in it.
func (m *Metrics) RequestCounter(method string, status int) prometheus.Counter {
	if status < minCode || status >= maxCode {
		return m.Requests.WithLabelValues(Method(method), Code(status))
	}
	slot := &m.requests[methodIndex(method)][status-minCode]
	if c := slot.Load(); c != nil {
		return c.Counter
	}
	c := &counter{m.Requests.WithLabelValues(Method(method), Code(status))}
	slot.Store(c) // a racing lookup stores the same counter
	return c.Counter
}

// methodIndex is m's index in methods, or len(methods) for OTHER.
func methodIndex(m string) int {
	for i, known := range methods {
		if m == known {
			return i
		}
	}
	return len(methods)
}

// The admission budgets, the values of the budget label.
const (
	BudgetRequests  = "requests"
	BudgetTransfers = "transfers"
)

// RateLimitKeys are the values of gateway_rate_limited_total's key
// label: what a limit counts per.
var RateLimitKeys = []string{"client_ip", "company"}

// UpstreamErrorKinds are the values of gateway_upstream_errors_total's
// kind label, created at 0 so a healthy gateway shows 0, not no data.
var UpstreamErrorKinds = []string{"refused", "timeout", "reset", "bad_response", "pool_exhausted", "client_abort"}

// JWKSResults are the values of gateway_jwks_refreshes_total's result label.
var JWKSResults = []string{"ok", "error"}

// Budget is one admission budget's instruments, looked up once.
type Budget struct {
	Queue                   prometheus.Gauge
	Wait                    prometheus.Observer
	QueueFull, QueueTimeout prometheus.Counter
}

// Admission returns the instruments of one budget.
func (m *Metrics) Admission(budget string) Budget {
	return Budget{
		Queue:        m.AdmissionQueueLength.WithLabelValues(budget),
		Wait:         m.AdmissionWait.WithLabelValues(budget),
		QueueFull:    m.AdmissionRefusals.WithLabelValues(budget, "queue_full"),
		QueueTimeout: m.AdmissionRefusals.WithLabelValues(budget, "queue_timeout"),
	}
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
		RateLimitStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_rate_limit_store_errors_total",
			Help: "Rate-limit decisions the shared store (Redis) failed to make in time.",
		}),
		RateLimitStoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_rate_limit_store_duration_seconds",
			Help:    "Time of one rate-limit decision in the shared store (Redis), failed or not.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
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
		AdmissionQueueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_admission_queue_length",
			Help: "Requests waiting for an admission slot now, by budget.",
		}, []string{"budget"}),
		AdmissionWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_admission_wait_seconds",
			Help:    "Time a request waited for an admission slot, admitted or refused, by budget.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"budget"}),
		AdmissionRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_admission_refusals_total",
			Help: "Requests refused 503 by admission, by budget and reason.",
		}, []string{"budget", "reason"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_auth_failures_total",
			Help: "Requests refused by authentication, by reason.",
		}, []string{"reason"}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_jwks_refreshes_total",
			Help: "JWKS key set fetches (scheduled, unknown kid, retries at start), by result.",
		}, []string{"result"}),
	}
	// Every series with a fixed label set exists from the start, at 0.
	for _, kind := range UpstreamErrorKinds {
		m.UpstreamErrors.WithLabelValues(kind)
	}
	for _, b := range []string{BudgetRequests, BudgetTransfers} {
		m.Admission(b)
	}
	for _, r := range JWKSResults {
		m.JWKSFetches.WithLabelValues(r)
	}
	for _, key := range RateLimitKeys {
		m.RateLimited.WithLabelValues(key)
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.UpstreamDuration, m.UpstreamErrors,
		m.InFlight, m.RequestBodyBytes, m.ResponseBodyBytes,
		m.AdmissionQueueLength, m.AdmissionWait, m.AdmissionRefusals, m.AuthFailures, m.JWKSFetches,
		m.RateLimited, m.RateLimitStoreErrors, m.RateLimitStoreDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Method returns the method label for m: the method itself for the
// standard ones, "OTHER" for anything a client made up. The result is
// always a constant, never m: the registry keeps label values for good,
// and m may alias a request buffer that is about to be reused.
func Method(m string) string {
	if i := methodIndex(m); i < len(methods) {
		return methods[i]
	}
	return OtherMethod
}

// OtherMethod is the method label of every method not in the standard
// set.
const OtherMethod = "OTHER"

// Code returns the status code label.
func Code(status int) string {
	return strconv.Itoa(status)
}
