package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wrkClean and wrkFailing are real wrk 4.1.0 reports.
const (
	wrkClean = `Running 1s test @ http://127.0.0.1:18555/api/v1/ping
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.38ms    2.53ms  21.82ms   87.02%
    Req/Sec    15.79k     4.36k   24.35k    70.00%
  Latency Distribution
     50%    1.68ms
     75%    3.40ms
     90%    5.50ms
     99%   11.85ms
  31635 requests in 1.01s, 3.71MB read
Requests/sec:  31237.13
Transfer/sec:      3.66MB
`
	wrkFailing = `Running 1s test @ http://127.0.0.1:18555/api/v1/status/500
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   208.79us    0.95ms  14.27ms   96.96%
    Req/Sec    23.95k     1.78k   25.62k    80.00%
  Latency Distribution
     50%   63.00us
     75%   70.00us
     90%  129.00us
     99%    1.02s
  23761 requests in 1.00s, 3.15MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 23761
Requests/sec:  23752.92
Transfer/sec:      3.15MB`
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name                 string
		out                  string
		requests             int64
		rps                  float64
		p50, p99             time.Duration
		socketErrors, non2xx int64
		wantErr              string
	}{
		{name: "clean", out: wrkClean, requests: 31635, rps: 31237.13,
			p50: 1680 * time.Microsecond, p99: 11850 * time.Microsecond},
		{name: "errors", out: wrkFailing, requests: 23761, rps: 23752.92,
			p50: 63 * time.Microsecond, p99: 1020 * time.Millisecond, socketErrors: 10, non2xx: 23761},
		{name: "no latency distribution", out: strings.Replace(wrkClean, "Latency Distribution", "", 1),
			wantErr: "no latency 50%, latency 99%"},
		{name: "empty", out: "", wantErr: "no Requests/sec"},
		{name: "bad unit", out: strings.Replace(wrkClean, "1.68ms", "1.68xs", 1), wantErr: `"1.68xs" is not a wrk duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got.requests != tt.requests || got.rps != tt.rps {
				t.Errorf("got %d requests at %v/s, want %d at %v/s", got.requests, got.rps, tt.requests, tt.rps)
			}
			if got.latency["50%"] != tt.p50 || got.latency["99%"] != tt.p99 {
				t.Errorf("got p50 %s p99 %s, want %s and %s", got.latency["50%"], got.latency["99%"], tt.p50, tt.p99)
			}
			if got.socketErrors != tt.socketErrors || got.non2xx != tt.non2xx {
				t.Errorf("got %d socket errors and %d non-2xx, want %d and %d", got.socketErrors, got.non2xx, tt.socketErrors, tt.non2xx)
			}
			if want := tt.socketErrors + tt.non2xx; got.failed() != want {
				t.Errorf("got %d failed, want %d", got.failed(), want)
			}
		})
	}
}

func TestWritePostScript(t *testing.T) {
	path, err := writePostScript(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	for _, want := range []string{`wrk.method = "POST"`, `wrk.headers["Content-Type"] = "application/json"`} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	_, body, ok := strings.Cut(script, "wrk.body = '")
	body, _, ok2 := strings.Cut(body, "'\n")
	if !ok || !ok2 {
		t.Fatalf("no single-quoted wrk.body in:\n%s", script)
	}
	if len(body) != postBodySize || !json.Valid([]byte(body)) {
		t.Errorf("got a body of %d bytes (valid JSON: %v), want %d bytes of JSON", len(body), json.Valid([]byte(body)), postBodySize)
	}
	if filepath.Ext(path) != ".lua" {
		t.Errorf("got script %s, want a .lua file", path)
	}
}
