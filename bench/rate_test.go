package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestRateFromMetrics checks the outcome carries vegeta's figures through.
func TestRateFromMetrics(t *testing.T) {
	var m vegeta.Metrics
	for i, code := range []uint16{200, 200, 200, 500} {
		m.Add(&vegeta.Result{Code: code, Latency: time.Duration(i+1) * time.Millisecond,
			Timestamp: time.Unix(0, 0).Add(time.Duration(i) * 10 * time.Millisecond)})
	}
	m.Close()
	o := rateFromMetrics(100, &m)
	if o.requests != 4 || o.success != 0.75 || o.max != 4*time.Millisecond {
		t.Fatalf("got %+v", o)
	}
	if row := o.row("nginx"); !strings.HasPrefix(row, "| nginx | 100 |") || !strings.Contains(row, "75.00 %") {
		t.Fatalf("row %q", row)
	}
}

// TestRunRate offers a small rate to a real server on 127.0.0.1.
func TestRunRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	o := runRate(context.Background(), srv.URL, 50, time.Second)
	if o.requests < 45 || o.requests > 55 || o.success != 1 {
		t.Fatalf("got %+v", o)
	}
}
