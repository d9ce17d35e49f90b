package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Process lifetimes.
const (
	// stopGrace is how long a process gets between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
	// readyTimeout bounds the wait for a fresh process to answer.
	readyTimeout = 10 * time.Second
	// readyPoll is the interval between readiness probes; it is also the
	// resolution of the gateway's measured start-up time.
	readyPoll = 2 * time.Millisecond
	// startAttempts is how often a start is tried, each on a fresh port: a
	// free port picked by listening on :0 and closing may be taken by
	// someone else before the child binds it.
	startAttempts = 3
)

// mockPrefix is the mock's API prefix; the proxies serve it under
// mockPrefix+"/ingest".
const mockPrefix = "/api/v1"

// proc is a child process started by the kit.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time     // just before exec
	done    chan struct{} // closed once the process has exited
	waitErr error         // cmd.Wait's answer, valid once done is closed
	stderr  string        // path of its stderr file
}

// startProc starts bin with args and env (besides PATH and HOME, nothing
// of the kit's environment leaks in), in dir, with stdout and stderr to the
// named files in dir. The process gets SIGKILL if the kit dies first.
func startProc(name, dir, bin string, args, env []string, stdout, stderr string) (*proc, error) {
	open := func(file string) (*os.File, error) {
		return os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	}
	out, err := open(stdout)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	errf, err := open(stderr)
	if err != nil {
		return nil, err
	}
	defer errf.Close()

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), stderr: errf.Name()}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process's id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopGrace, then sends SIGKILL to the
// process and its children (nginx's workers). It reports a process that had
// already exited, one that needed SIGKILL, and a non-zero exit status.
func (p *proc) stop() error {
	if p.exited() {
		return fmt.Errorf("%s had exited before it was stopped (%v): %s", p.name, p.waitErr, p.stderrTail())
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("%s exited after SIGTERM with %v: %s", p.name, p.waitErr, p.stderrTail())
		}
		return nil
	case <-timer.C:
	}
	for _, child := range childPIDs(p.pid()) {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s was still running %s after SIGTERM: killed", p.name, stopGrace)
}

// stderrTail is the end of the process's stderr, for error messages.
func (p *proc) stderrTail() string {
	b, err := os.ReadFile(p.stderr)
	if err != nil || len(b) == 0 {
		return "no stderr"
	}
	return "stderr: " + lastLines(string(b), 5)
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls url until it answers 200 and returns the time since the
// process was started. It fails if the process exits, or after
// readyTimeout.
func waitReady(ctx context.Context, p *proc, url string) (time.Duration, error) {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   time.Second,
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.started), nil
			}
		}
		if p.exited() {
			return 0, fmt.Errorf("%s exited before answering %s (%v): %s", p.name, url, p.waitErr, p.stderrTail())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not answer 200 on %s within %s", p.name, url, readyTimeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(readyPoll):
		}
	}
}

// startReady starts a process on a free port with launch and waits until
// it answers 200 on the URL that launch returns. A process that fails to
// come up is stopped; if it could not bind the port, the start is retried
// on another one.
func startReady(ctx context.Context, launch func(port int) (*proc, string, error)) (*proc, int, time.Duration, error) {
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, 0, 0, err
		}
		p, url, err := launch(port)
		if err != nil {
			return nil, 0, 0, err
		}
		ready, err := waitReady(ctx, p, url)
		if err == nil {
			return p, port, ready, nil
		}
		errs = append(errs, err)
		if !p.exited() {
			_ = p.stop()
		}
		if ctx.Err() != nil || !strings.Contains(strings.ToLower(p.stderrTail()), "address already in use") {
			break // Only a lost race for the port is worth another try.
		}
	}
	return nil, 0, 0, errors.Join(errs...)
}

// baseURL is the URL of 127.0.0.1:port.
func baseURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

// target is what the clients talk to in one run: the mock itself, or a
// proxy in front of it.
type target struct {
	name   string
	base   string // "http://127.0.0.1:port"
	prefix string // the path prefix that reaches the mock's mockPrefix
	proxy  *proc  // nil for direct
	// pids lists the proxy's processes, for memory and CPU figures; nil
	// for direct.
	pids  func() []int
	ready time.Duration // from exec to the first 200
}

// url is the target's URL for the mock route route, such as "/ping".
func (t *target) url(route string) string {
	return t.base + t.prefix + route
}

// startMock starts the mock ingest service and waits for its /ping.
func startMock(ctx context.Context, dir, bin string) (*proc, int, error) {
	p, port, _, err := startReady(ctx, func(port int) (*proc, string, error) {
		p, err := startProc("mock", dir, bin, []string{"-addr", "127.0.0.1:" + strconv.Itoa(port), "-prefix", mockPrefix},
			nil, "mock.out", "mock.err")
		return p, baseURL(port) + mockPrefix + "/ping", err
	})
	return p, port, err
}

// directTarget is the mock itself.
func directTarget(mockPort int) *target {
	return &target{name: targetDirect, base: baseURL(mockPort), prefix: mockPrefix}
}

// startGateway starts the gateway in front of the mock, with production
// defaults but for the settings in extraEnv, and waits for its /health. Its
// stdout, the JSON log with one access line per request, goes to
// gateway.log.
func startGateway(ctx context.Context, dir, bin string, mockPort int, extraEnv []string) (*target, error) {
	p, port, ready, err := startReady(ctx, func(port int) (*proc, string, error) {
		env := append([]string{
			"GATEWAY_INGEST_SERVICE_URL=" + baseURL(mockPort),
			"HOST=127.0.0.1",
			"PORT=" + strconv.Itoa(port),
		}, extraEnv...)
		// An absent -env-file: the repository's .env must not leak in.
		args := []string{"-env-file", filepath.Join(dir, "absent.env")}
		p, err := startProc(targetGateway, dir, bin, args, env, "gateway.log", "gateway.err")
		return p, baseURL(port) + "/health", err
	})
	if err != nil {
		return nil, err
	}
	return &target{
		name:   targetGateway,
		base:   baseURL(port),
		prefix: mockPrefix + "/ingest",
		proxy:  p,
		pids:   func() []int { return []int{p.pid()} },
		ready:  ready,
	}, nil
}

// nginxConf is the data of nginx.conf.tmpl.
type nginxConf struct {
	Dir          string // prefix directory: config, pid, logs, temp files
	Port         int
	UpstreamPort int
	AsRoot       bool // the kit runs as root, so nginx's workers may too
}

// writeNginxConf renders conf into dir for nginx to listen on port in
// front of the mock on mockPort, and returns the arguments that make nginx
// use it, with dir as its prefix.
func writeNginxConf(conf *template.Template, dir string, port, mockPort int) ([]string, error) {
	path := filepath.Join(dir, "nginx.conf")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	err = conf.Execute(f, nginxConf{Dir: dir, Port: port, UpstreamPort: mockPort, AsRoot: os.Geteuid() == 0})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	// -e: the error log from the first line on, never the system's.
	return []string{"-p", dir + "/", "-c", path, "-e", filepath.Join(dir, "error.log")}, nil
}

// startNginx renders conf into dir, starts nginx in the foreground in front
// of the mock, and waits until it proxies /ping.
func startNginx(ctx context.Context, dir, bin string, conf *template.Template, mockPort int) (*target, error) {
	p, port, ready, err := startReady(ctx, func(port int) (*proc, string, error) {
		args, err := writeNginxConf(conf, dir, port, mockPort)
		if err != nil {
			return nil, "", err
		}
		p, err := startProc(targetNginx, dir, bin, append(args, "-g", "daemon off;"), nil, "nginx.out", "nginx.err")
		return p, baseURL(port) + mockPrefix + "/ingest/ping", err
	})
	if err != nil {
		return nil, err
	}
	return &target{
		name:   targetNginx,
		base:   baseURL(port),
		prefix: mockPrefix + "/ingest",
		proxy:  p,
		pids:   func() []int { return append([]int{p.pid()}, childPIDs(p.pid())...) },
		ready:  ready,
	}, nil
}

// processNames describes pids for progress lines, such as "1234+2 workers".
func processNames(pids []int) string {
	if len(pids) <= 1 {
		return strings.Trim(fmt.Sprint(pids), "[]")
	}
	return fmt.Sprintf("%d+%d workers", pids[0], len(pids)-1)
}
