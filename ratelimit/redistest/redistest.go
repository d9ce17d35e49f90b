// Package redistest runs a real redis-server for tests: on 127.0.0.1, on
// a free port, in a temporary directory, with no persistence, stopped by
// its PID when the test ends. Tests that need one call Start; it skips
// the test when redis-server is not installed, except in CI (CI set),
// where a missing server is a failure, so the tests cannot silently stop
// running there.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process, which may be stopped and started
// again on the same port.
type Server struct {
	// Addr is host:port.
	Addr string
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// readyTimeout bounds how long a server may take to start.
const readyTimeout = 10 * time.Second

// Start starts a server for t, stopped at t's end.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed, and CI must run the Redis tests (.ci/run installs it): %v", err)
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); set CI to make this a failure")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, dir: t.TempDir(), port: port}
	s.Restart(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Restart starts the server again after Stop, on the same port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("redistest: server already running")
	}
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no",
		"--protected-mode", "yes", "--loglevel", "notice")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan error, 1)
	go func(ready chan<- error) {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		var seen []string
		for sc.Scan() {
			line := sc.Text()
			if ready != nil && strings.Contains(line, "Ready to accept connections") {
				ready <- nil
				ready = nil
			}
			if ready != nil {
				seen = append(seen, line)
			}
		}
		if ready != nil {
			ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", strings.Join(seen, "\n"))
		}
		cmd.Wait()
	}(ready)
	select {
	case err := <-ready:
		if err != nil {
			s.cmd = nil
			t.Fatal(err)
		}
	case <-time.After(readyTimeout):
		s.Stop(t)
		t.Fatalf("redis-server not ready within %v", readyTimeout)
	}
}

// Stop stops the server, by its PID, and waits for it to exit.
func (s *Server) Stop(t testing.TB) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL) // works on a paused server too
	<-s.done
	s.cmd = nil
}

// Pause stops the server in its tracks (SIGSTOP): connections stay open
// and requests are accepted by the kernel, but nothing answers, as with a
// Redis stuck on a slow command or a network that drops packets.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume lets a paused server carry on (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
