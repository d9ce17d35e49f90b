package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// peers are the programs the kit runs besides the two binaries under test.
// An empty path means the peer could not be had; notes say why.
type peers struct {
	wrk, nginx               string // paths
	wrkVersion, nginxVersion string
	notes                    []string
}

// aptTimeout bounds each apt-get command.
const aptTimeout = 5 * time.Minute

// systemNginxPIDFile is where Debian's nginx service keeps its pid, should
// the package's install script start it.
const systemNginxPIDFile = "/run/nginx.pid"

// findPeers looks for wrk and nginx and, if install is set and the kit runs
// as root, installs the missing ones with apt-get. It never fails: a peer
// that cannot be had is left empty and the reason noted.
func findPeers(ctx context.Context, install bool, log io.Writer) peers {
	var p peers
	p.wrk, p.nginx = lookPath("wrk"), lookPath("nginx")
	var missing []string
	if p.wrk == "" {
		missing = append(missing, "wrk")
	}
	if p.nginx == "" {
		missing = append(missing, "nginx")
	}
	switch {
	case len(missing) == 0:
	case !install:
		p.notes = append(p.notes, fmt.Sprintf("not installed, and -install=false: %s", strings.Join(missing, ", ")))
	case os.Geteuid() != 0:
		p.notes = append(p.notes, fmt.Sprintf("not installed, and installing needs root: %s", strings.Join(missing, ", ")))
	default:
		fmt.Fprintf(log, "installing %s with apt-get\n", strings.Join(missing, " "))
		if err := aptInstall(ctx, missing, log); err != nil {
			p.notes = append(p.notes, fmt.Sprintf("apt-get install %s failed: %v", strings.Join(missing, " "), err))
		}
		p.wrk, p.nginx = lookPath("wrk"), lookPath("nginx")
	}
	if p.wrk == "" {
		p.notes = append(p.notes, "wrk unavailable: the get and post1k tests are skipped")
	} else {
		p.wrkVersion = version(ctx, p.wrk, "-v", "wrk ")
	}
	if p.nginx == "" {
		p.notes = append(p.notes, "nginx unavailable: the nginx target is skipped")
	} else {
		p.nginxVersion = version(ctx, p.nginx, "-v", "nginx version: ")
	}
	return p
}

// lookPath finds a program in PATH or, as PATH may lack the sbin
// directories where Debian puts nginx, in /usr/sbin; "" if neither has it.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p, err := exec.LookPath("/usr/sbin/" + name); err == nil {
		return p
	}
	return ""
}

// aptInstall runs apt-get update once, then apt-get install -y pkgs. If the
// install started Debian's nginx service (its pid file appeared), that
// service is stopped again: the kit runs nginx itself, and a system nginx
// on port 80 is nobody's intent.
func aptInstall(ctx context.Context, pkgs []string, log io.Writer) error {
	_, statErr := os.Stat(systemNginxPIDFile)
	hadSystemNginx := statErr == nil
	if err := apt(ctx, "update"); err != nil {
		return err
	}
	installErr := apt(ctx, append([]string{"install", "-y"}, pkgs...)...)
	if !hadSystemNginx {
		if err := stopSystemNginx(); err != nil {
			fmt.Fprintln(log, "warning:", err)
		}
	}
	return installErr
}

// apt runs apt-get with args non-interactively, showing its output's last
// lines if it fails.
func apt(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, aptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 15))
	}
	return nil
}

// stopSystemNginx stops the nginx whose pid is in systemNginxPIDFile, if
// there is one and it is nginx, and waits up to 5 s for it to exit.
func stopSystemNginx() error {
	b, err := os.ReadFile(systemNginxPIDFile)
	if err != nil {
		return nil // Not started.
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s holds %q, not a pid: left alone", systemNginxPIDFile, b)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "nginx" {
		return nil // Stale pid file.
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping the nginx service that apt-get started (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	return fmt.Errorf("the nginx service that apt-get started (pid %d) is still running 5 s after SIGTERM", pid)
}

// version runs bin with flag and returns the first line of what it prints,
// without prefix, and without wrk's copyright notice.
func version(ctx context.Context, bin, flag, prefix string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, flag).CombinedOutput() // wrk -v exits 1.
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	line = strings.TrimPrefix(line, prefix)
	if line == "" {
		return "unknown"
	}
	return line
}

// machine describes where and how the kit ran, for the report's header.
type machine struct {
	date      string
	arch      string // uname -m
	nproc     int
	cpu       string
	goGateway string // Go version the gateway binary was built with
	goBench   string
}

// describeMachine gathers the report's header facts.
func describeMachine(ctx context.Context, gatewayBin string) machine {
	m := machine{
		date:      time.Now().Format("2006-01-02 15:04:05 MST"),
		nproc:     runtime.NumCPU(),
		goBench:   runtime.Version(),
		goGateway: "unknown",
		arch:      runtime.GOARCH,
		cpu:       "unknown",
	}
	if out, err := exec.CommandContext(ctx, "uname", "-m").Output(); err == nil {
		m.arch = strings.TrimSpace(string(out))
	}
	if info, err := buildinfo.ReadFile(gatewayBin); err == nil {
		m.goGateway = info.GoVersion
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(b) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				m.cpu = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	return m
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
