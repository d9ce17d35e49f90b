package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInvalidConfigExits checks that a bad configuration stops the gateway
// at once, with exit code 1 and every bad variable named with its value, so
// an operator fixes them all in one round trip.
func TestInvalidConfigExits(t *testing.T) {
	t.Parallel()
	for _, row := range []struct {
		name string
		bad  [][2]string // name, value
	}{
		{"three bad values", [][2]string{
			{"GATEWAY_HTTP_CLIENT_TIMEOUT", "abc"},
			{"GATEWAY_LOG_LEVEL", "loud"},
			{"PORT", "http"},
		}},
		{"ingest URL without a scheme", [][2]string{
			{"GATEWAY_INGEST_SERVICE_URL", "ingest:80"},
		}},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			// Port 9 (discard) is never dialled: the gateway must not get
			// that far.
			env := gatewayEnv("http://127.0.0.1:9")
			for _, kv := range row.bad {
				env = append(env, kv[0]+"="+kv[1])
			}
			g := launch(t, env, "-env-file", filepath.Join(t.TempDir(), "absent.env"))
			code, took, ok := g.waitExit(5 * time.Second)
			if !ok {
				t.Fatal("gateway still running 5 s after start with an invalid configuration")
			}
			if code != 1 {
				t.Errorf("got exit code %d, want 1", code)
			}
			stderr := g.stderr.String()
			for _, kv := range row.bad {
				named := false
				for _, line := range readLines(stderr) {
					named = named || strings.Contains(line, kv[0]) && strings.Contains(line, strconv.Quote(kv[1]))
				}
				if !named {
					t.Errorf("got stderr %q, want a line naming %s and its value %q", stderr, kv[0], kv[1])
				}
			}
			critical := false
			for _, m := range logLines(t, g) {
				errText, _ := m["error"].(string)
				critical = critical || m["level"] == "critical" && strings.Contains(errText, row.bad[0][0])
			}
			if !critical {
				t.Errorf("got stdout %q, want a critical line whose error names %s", g.stdout.Lines(), row.bad[0][0])
			}
			t.Logf("exit code %d after %v; stderr:\n%s", code, took.Round(time.Millisecond), stderr)
		})
	}
}

// TestPortInUse checks that a taken port stops the gateway at once with
// exit code 1 and a message naming the address.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	g := launch(t, gatewayEnv("http://127.0.0.1:9", "PORT="+port), "-env-file", filepath.Join(t.TempDir(), "absent.env"))
	code, took, ok := g.waitExit(5 * time.Second)
	if !ok {
		t.Fatalf("gateway still running 5 s after start on the taken port %s", port)
	}
	if code != 1 {
		t.Errorf("got exit code %d, want 1", code)
	}
	output := g.stderr.String() + strings.Join(g.stdout.Lines(), "\n")
	for _, want := range []string{"address already in use", addr} {
		if !strings.Contains(output, want) {
			t.Errorf("got output %q, want it to contain %q", output, want)
		}
	}
	t.Logf("exit code %d after %v; stderr: %s", code, took.Round(time.Millisecond), g.stderr.String())
}

// TestDotenv checks that settings are read from the -env-file and that the
// process environment wins over it.
func TestDotenv(t *testing.T) {
	t.Parallel()
	in := startIngest(t)
	for _, row := range []struct {
		name string
		env  []string
		// wantLevel is the level the gateway reports it logs at.
		wantLevel string
	}{
		{"process environment wins", []string{"GATEWAY_LOG_LEVEL=INFO"}, "INFO"},
		// The control: without the override the file's DEBUG applies, so
		// the row above would see debug lines if the override failed.
		{"file alone", nil, "DEBUG"},
	} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			envFile := filepath.Join(t.TempDir(), ".env")
			if err := os.WriteFile(envFile, []byte("GATEWAY_PROJECT_NAME=From Dotenv\nGATEWAY_LOG_LEVEL=DEBUG\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			g := startGateway(t, envFile, gatewayEnv(in.url, row.env...))

			var root struct {
				Message string `json:"message"`
			}
			status := getJSON(t, g, "/", &root)
			if status != http.StatusOK || root.Message != "From Dotenv is running!" {
				t.Errorf("GET /: got %d %q, want 200 %q", status, root.Message, "From Dotenv is running!")
			}
			// A proxied request logs at debug level when that is enabled.
			if status := getJSON(t, g, "/api/v1/ingest/ping", nil); status != http.StatusOK {
				t.Errorf("GET /api/v1/ingest/ping: got status %d, want 200", status)
			}
			g.stop(t, 10*time.Second)

			lines := logLines(t, g)
			debug := 0
			for _, m := range lines {
				if m["level"] == "debug" {
					debug++
				}
				if m["event"] == "Gateway listening" && m["log_level"] != row.wantLevel {
					t.Errorf("listening line: got log_level %v, want %s", m["log_level"], row.wantLevel)
				}
			}
			if wantDebug := row.wantLevel == "DEBUG"; (debug > 0) != wantDebug {
				t.Errorf("got %d debug lines, want some: %t", debug, wantDebug)
			}
			t.Logf("log level %s: %d of %d lines at debug level", row.wantLevel, debug, len(lines))
		})
	}
}

// getJSON GETs path from the gateway and decodes the JSON reply into v,
// unless v is nil; it returns the status.
func getJSON(t *testing.T, g *gateway, path string, v any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Errorf("GET %s: got body %q, want JSON: %v", path, body, err)
		}
	}
	return resp.StatusCode
}
