package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/ingestmock"
)

// MiB is a mebibyte, the unit of every body size and memory figure here.
const MiB = 1 << 20

// gatewayBin is the gateway binary that TestMain builds once for all tests.
var gatewayBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the gateway into a temporary directory, runs the
// tests, and removes the directory. The binary is built without -race even
// when the tests run with it, so its memory figures are the production ones.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: creating a directory for the gateway binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gatewayBin = filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", gatewayBin, "github.com/atenex/gateway")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the gateway failed:", err)
		return 1
	}
	return m.Run()
}

// ingest is the mock ingest service, served on 127.0.0.1:0 for one test.
type ingest struct {
	url string
	// sinks counts requests that have reached the sink route, so a test
	// knows an upload is really in flight through the gateway.
	sinks atomic.Int64
}

func startIngest(t *testing.T) *ingest {
	t.Helper()
	in := &ingest{}
	mock := ingestmock.New("/api/v1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/sink" {
			in.sinks.Add(1)
		}
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	in.url = srv.URL
	return in
}

// gatewayEnv is the environment of a gateway in front of ingestURL on a
// free port of 127.0.0.1, followed by extra, whose entries win.
func gatewayEnv(ingestURL string, extra ...string) []string {
	return append([]string{
		"GATEWAY_INGEST_SERVICE_URL=" + ingestURL,
		"HOST=127.0.0.1",
		"PORT=0",
		"GATEWAY_ADMIN_PORT=0",
	}, extra...)
}

// gateway is one gateway process.
type gateway struct {
	cmd    *exec.Cmd
	stdout *lineLog
	stderr *lockedBuffer
	// exited is closed once the process has exited and its output is read;
	// exitCode is valid after that.
	exited   chan struct{}
	exitCode int

	// Set by startGateway once the gateway answers /health.
	base   string // "http://127.0.0.1:port"
	addr   string // "127.0.0.1:port"
	client *http.Client
}

// launch starts the gateway binary with args and, besides PATH and HOME,
// only env: the developer's GATEWAY_* variables must not leak in. The
// process is killed, if still running, when the test ends, and its output
// is shown if the test failed.
func launch(t *testing.T, env []string, args ...string) *gateway {
	t.Helper()
	cmd := exec.Command(gatewayBin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return startProcess(t, cmd, "gateway")
}

// startProcess starts cmd with its output captured, and arranges for it to
// be killed when the test ends and its output shown if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, label string) *gateway {
	t.Helper()
	g := &gateway{
		cmd:    cmd,
		stdout: newLineLog(),
		stderr: &lockedBuffer{},
		exited: make(chan struct{}),
	}
	g.cmd.Stdout, g.cmd.Stderr = g.stdout, g.stderr
	g.cmd.WaitDelay = 5 * time.Second
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("starting %s %q: %v", label, g.cmd.Args, err)
	}
	go func() {
		_ = g.cmd.Wait()
		g.exitCode = g.cmd.ProcessState.ExitCode()
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			lines := g.stdout.Lines()
			t.Logf("%s pid %d exit code %d; stderr:\n%s", label, g.cmd.Process.Pid, g.exitCode, g.stderr.String())
			t.Logf("%s stdout, last %d of %d lines:\n%s", label, min(len(lines), 30), len(lines),
				strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return g
}

// startGateway starts a gateway with env and the settings file envFile
// ("" for none), and returns once it answers GET /health with 200.
func startGateway(t *testing.T, envFile string, env []string) *gateway {
	t.Helper()
	if envFile == "" {
		envFile = filepath.Join(t.TempDir(), "absent.env")
	}
	g := launch(t, env, "-env-file", envFile)

	listening, err := g.waitEvent("Gateway listening", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g.addr, _ = listening["address"].(string)
	if g.addr == "" {
		t.Fatalf("got listening line %v, want an address in it", listening)
	}
	g.base = "http://" + g.addr
	transport := &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
	t.Cleanup(transport.CloseIdleConnections)
	g.client = &http.Client{Transport: transport}

	g.waitHealthy(t)
	return g
}

// waitHealthy polls /health until it answers 200, failing the test after
// 10 s or if the process exits first.
func (g *gateway) waitHealthy(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		status, err := g.healthStatus()
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /health: got status %d, error %v after 10 s; want 200", status, err)
		}
		select {
		case <-poll.C:
		case <-g.exited:
			t.Fatalf("gateway exited with code %d before answering /health", g.exitCode)
		}
	}
}

func (g *gateway) healthStatus() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitEvent returns the first stdout line whose event is event, waiting up
// to timeout for it. It gives up early if the process exits without it.
func (g *gateway) waitEvent(event string, timeout time.Duration) (map[string]any, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	find := func(lines []string) map[string]any {
		for _, line := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["event"] == event {
				return m
			}
		}
		return nil
	}
	for {
		lines, changed := g.stdout.snapshot()
		if m := find(lines); m != nil {
			return m, nil
		}
		select {
		case <-changed:
		case <-g.exited:
			// The output is complete once the process has exited.
			if m := find(g.stdout.Lines()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("gateway exited with code %d without logging %q; stderr: %s",
				g.exitCode, event, g.stderr.String())
		case <-timer.C:
			return nil, fmt.Errorf("no %q line on the gateway's stdout after %v", event, timeout)
		}
	}
}

// signal sends sig to the gateway process.
func (g *gateway) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to the gateway: %v", sig, err)
	}
}

// waitExit waits up to timeout for the process to exit and returns its exit
// code and how long it took; ok is false if it is still running.
func (g *gateway) waitExit(timeout time.Duration) (code int, took time.Duration, ok bool) {
	start := time.Now()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-g.exited:
		return g.exitCode, time.Since(start), true
	case <-timer.C:
		return 0, timeout, false
	}
}

// stopGateway sends SIGTERM and fails the test unless the gateway exits
// with code 0 within timeout.
func (g *gateway) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	g.signal(t, syscall.SIGTERM)
	code, took, ok := g.waitExit(timeout)
	if !ok {
		t.Fatalf("gateway still running %v after SIGTERM", timeout)
	}
	if code != 0 {
		t.Errorf("got exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("gateway exited %v after SIGTERM", took.Round(time.Millisecond))
}

// peakRSS returns the gateway's peak resident set size (VmHWM) in bytes.
// The process must still be running.
func (g *gateway) peakRSS(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the gateway's peak RSS: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", g.cmd.Process.Pid)
	return 0
}

// checkPeakRSS fails the test if the gateway's peak RSS reached limit.
func (g *gateway) checkPeakRSS(t *testing.T, limit int64) int64 {
	t.Helper()
	peak := g.peakRSS(t)
	if peak >= limit {
		t.Errorf("got gateway peak RSS %.1f MiB, want < %.0f MiB", mib(peak), mib(limit))
	}
	return peak
}

// logLines parses every stdout line of the gateway as a JSON object and
// checks that it has the keys every line must have, as strings.
func logLines(t *testing.T, g *gateway) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range g.stdout.Lines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stdout line %d is not a JSON object: %v: %q", i+1, err, line)
			continue
		}
		for _, key := range []string{"timestamp", "level", "logger", "event"} {
			if s, ok := m[key].(string); !ok || s == "" {
				t.Errorf("stdout line %d: got %s %#v, want a non-empty string: %s", i+1, key, m[key], line)
			}
		}
		out = append(out, m)
	}
	return out
}

// hasEvent reports whether one of lines has the given event.
func hasEvent(lines []map[string]any, event string) bool {
	for _, m := range lines {
		if m["event"] == event {
			return true
		}
	}
	return false
}

// lineLog collects a process's output line by line and lets readers wait
// for more.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

func newLineLog() *lineLog {
	return &lineLog{changed: make(chan struct{})}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte{'\n'})
		if !ok {
			break
		}
		l.lines = append(l.lines, string(line))
		l.partial = append(l.partial[:0], rest...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the complete lines so far and a channel closed when
// more output arrives.
func (l *lineLog) snapshot() ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[:len(l.lines):len(l.lines)], l.changed
}

// Lines returns the complete lines so far, and any unterminated last one.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := append([]string(nil), l.lines...)
	if len(l.partial) > 0 {
		lines = append(lines, string(l.partial))
	}
	return lines
}

// lockedBuffer is a bytes.Buffer safe for one writer and other readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// patternDigest is the hex sha256 of ingestmock.Pattern(n), computed by
// streaming: no test holds a big body in memory.
func patternDigest(t *testing.T, n int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ingestmock.Pattern(n), make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// waitUntil polls cond every few milliseconds until it holds, failing the
// test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting until %s", timeout, what)
		}
		<-poll.C
	}
}

// readLines splits s into lines, for error output checks.
func readLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func mib(n int64) float64 { return float64(n) / MiB }

// mbps is a throughput in decimal megabytes per second.
func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
