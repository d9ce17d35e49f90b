package e2e_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/ingestmock"
)

// containerVersion is what the test stamps into the binary, as
// docker build --build-arg VERSION=... would.
const containerVersion = "9.8.7-e2e-container"

// distrolessUsers maps the user names of gcr.io/distroless images to their
// IDs, since there is no image here to read /etc/passwd from.
var distrolessUsers = map[string]string{"nonroot": "65532", "root": "0"}

// TestContainer checks what the Docker image relies on, without a Docker
// engine: it builds the gateway with the Dockerfile's own build command,
// checks that the binary is static and stripped, then runs it as the image
// does — alone in an empty root directory, as the image's non-root user,
// with only the image's environment — and checks that it serves, proxies,
// answers the HEALTHCHECK command and stops cleanly on the STOPSIGNAL.
//
// The root directory holds nothing but the binary (distroless adds CA
// certificates, tzdata and /etc/passwd; the gateway must not need them) and
// is not writable by the user, as with readOnlyRootFilesystem.
func TestContainer(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("skipping: chroot into the test's root directory needs root (CAP_SYS_CHROOT)")
	}
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		t.Skip("skipping: no chroot command (coreutils) on PATH")
	}

	df := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildLikeDockerfile(t, df, rootfs)

	t.Run("static and stripped", func(t *testing.T) { checkStaticStripped(t, bin) })
	t.Run("version stamped", func(t *testing.T) { checkVersionStamp(t, bin) })

	in := startIngest(t)
	env := append(df.env(t),
		"GATEWAY_INGEST_SERVICE_URL="+in.url,
		// Free ports, not the image's 8080 and 9090, which another test or
		// program here may hold.
		"PORT=0",
		"GATEWAY_ADMIN_PORT=0",
	)
	user := df.userspec(t)
	g := launchChrooted(t, chroot, rootfs, user, env, df.entrypoint...)
	port := waitServing(t, g)

	t.Run("runs as the image's user", func(t *testing.T) {
		got := procIDs(t, g.cmd.Process.Pid)
		if want := strings.Split(user, ":"); !slices.Equal(got, want) {
			t.Errorf("got the gateway's uid:gid %s, want %s", strings.Join(got, ":"), user)
		}
	})

	t.Run("logs its version", func(t *testing.T) {
		started, err := g.waitEvent("Starting gateway", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if started["version"] != containerVersion {
			t.Errorf("got version %v in %q, want %q", started["version"], started["event"], containerVersion)
		}
	})

	t.Run("proxies", func(t *testing.T) { checkProxies(t, g) })

	t.Run("healthcheck", func(t *testing.T) {
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
		closed.Close()

		timeout := df.healthcheckTimeout(t)
		for _, row := range []struct {
			name     string
			port     string
			wantExit int
		}{
			{"gateway listening", port, 0},
			// Docker reads exit code 1 as unhealthy; 2 is reserved.
			{"nothing listening", closedPort, 1},
		} {
			t.Run(row.name, func(t *testing.T) {
				// The HEALTHCHECK runs in the container with the
				// container's environment; only PORT is the real one here.
				hcEnv := append(slices.Clone(env), "PORT="+row.port)
				code, took, out := runChrooted(t, chroot, rootfs, user, hcEnv, df.healthcheck...)
				if code != row.wantExit {
					t.Errorf("got exit code %d from %q, want %d; output: %s", code, df.healthcheck, row.wantExit, out)
				}
				if took >= timeout {
					t.Errorf("got the health check taking %v, want under the HEALTHCHECK --timeout %v", took, timeout)
				}
				t.Logf("%q with PORT=%s: exit %d after %v %s", df.healthcheck, row.port, code, took.Round(time.Millisecond), strings.TrimSpace(out))
			})
		}
	})

	t.Run("stops on STOPSIGNAL", func(t *testing.T) {
		g.signal(t, df.stopSignal)
		code, took, ok := g.waitExit(10 * time.Second)
		if !ok {
			t.Fatalf("gateway still running 10 s after %s", df.stopName)
		}
		if code != 0 {
			t.Errorf("got exit code %d after %s, want 0", code, df.stopName)
		}
		if lines := logLines(t, g); !hasEvent(lines, "Shutdown complete") {
			t.Errorf("got no %q line in the gateway's log after %s", "Shutdown complete", df.stopName)
		}
		t.Logf("exit code %d %v after %s", code, took.Round(time.Millisecond), df.stopName)
	})

	// The gateway wrote nothing: the root still holds the binary alone.
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(bin) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("got root directory entries %q after the run, want only %q", names, filepath.Base(bin))
	}
}

// dockerfile is what the test reads from the Dockerfile.
type dockerfile struct {
	// buildEnv and buildArgs are the go build command of the build stage:
	// ["CGO_ENABLED=0"] and ["build", "-trimpath", ...], with the -o path
	// as written and ${VERSION} expanded to containerVersion.
	buildEnv, buildArgs []string
	// copySrc and copyDst are the final stage's COPY --from of the binary.
	copySrc, copyDst string
	// The final stage's settings.
	user        string
	envs        []string // KEY=value, from ENV
	expose      []string
	entrypoint  []string
	healthcheck []string // the HEALTHCHECK's CMD
	hcFlags     []string // the HEALTHCHECK's --options
	stopSignal  syscall.Signal
	stopName    string // as written, "SIGTERM"
}

// parseDockerfile reads the instructions of path that the image depends
// on, failing the test if one is missing or has an unexpected form.
func parseDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines and drop comments and parser directives.
	var lines []string
	var cont strings.Builder
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cont.WriteString(rest + " ")
			continue
		}
		cont.WriteString(line)
		if s := strings.TrimSpace(cont.String()); s != "" {
			lines = append(lines, s)
		}
		cont.Reset()
	}

	df := &dockerfile{}
	final := false // in the last stage, the image itself
	stages := 0
	for _, line := range lines {
		stages += boolInt(strings.HasPrefix(strings.ToUpper(line), "FROM "))
	}
	seen := 0
	for _, line := range lines {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			seen++
			final = seen == stages
		case "RUN":
			if strings.Contains(rest, "go build") {
				df.buildEnv, df.buildArgs = parseGoBuild(t, rest)
			}
		case "COPY":
			if final && strings.HasPrefix(rest, "--from=") {
				f := strings.Fields(rest)
				df.copySrc, df.copyDst = f[len(f)-2], f[len(f)-1]
			}
		case "USER":
			if final {
				df.user = rest
			}
		case "ENV":
			if final {
				for _, kv := range shellWords(t, rest) {
					if !strings.Contains(kv, "=") {
						t.Fatalf("Dockerfile ENV %q: got %q, want KEY=value pairs", rest, kv)
					}
					df.envs = append(df.envs, kv)
				}
			}
		case "EXPOSE":
			if final {
				df.expose = strings.Fields(rest)
			}
		case "ENTRYPOINT":
			if final {
				df.entrypoint = execForm(t, line, rest)
			}
		case "HEALTHCHECK":
			if final {
				opts, cmd, ok := strings.Cut(rest, "CMD ")
				if !ok {
					t.Fatalf("Dockerfile %q: want a HEALTHCHECK CMD", line)
				}
				df.hcFlags = strings.Fields(opts)
				df.healthcheck = execForm(t, line, cmd)
			}
		case "STOPSIGNAL":
			if final {
				signals := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}
				sig, ok := signals[rest]
				if !ok {
					t.Fatalf("Dockerfile STOPSIGNAL: got %q, want SIGTERM or SIGINT, the signals the gateway drains on", rest)
				}
				df.stopSignal, df.stopName = sig, rest
			}
		}
	}

	if df.buildArgs == nil {
		t.Fatal("Dockerfile: got no RUN with go build")
	}
	if df.entrypoint == nil || df.healthcheck == nil || df.user == "" || df.copyDst == "" {
		t.Fatalf("Dockerfile: got entrypoint %q, healthcheck %q, user %q, COPY to %q; want all four in the final stage",
			df.entrypoint, df.healthcheck, df.user, df.copyDst)
	}
	if df.stopSignal == 0 {
		df.stopSignal, df.stopName = syscall.SIGTERM, "SIGTERM" // Docker's default
	}
	if out := flagValue(df.buildArgs, "-o"); out != df.copySrc {
		t.Errorf("Dockerfile: got go build -o %q and COPY --from of %q, want the same file", out, df.copySrc)
	}
	if df.entrypoint[0] != df.copyDst || df.healthcheck[0] != df.copyDst {
		t.Errorf("Dockerfile: got ENTRYPOINT %q and HEALTHCHECK %q, want both to run the copied %q", df.entrypoint, df.healthcheck, df.copyDst)
	}
	defaults := config.Default()
	if want := []string{strconv.Itoa(defaults.Port), strconv.Itoa(defaults.AdminPort)}; !slices.Equal(df.expose, want) {
		t.Errorf("Dockerfile EXPOSE: got %q, want the default PORT and GATEWAY_ADMIN_PORT %q", df.expose, want)
	}
	return df
}

// parseGoBuild splits a RUN line such as
// `CGO_ENABLED=0 go build -trimpath -ldflags "..." -o /out/gateway .` into
// its environment and the go command's arguments, expanding ${VERSION}.
func parseGoBuild(t *testing.T, run string) (env, args []string) {
	t.Helper()
	expanded := os.Expand(run, func(name string) string {
		if name != "VERSION" {
			t.Fatalf("Dockerfile RUN %q: got ${%s}, want only ${VERSION}, the build argument this test sets", run, name)
		}
		return containerVersion
	})
	words := shellWords(t, expanded)
	for len(words) > 0 && strings.HasPrefix(words[0], "--") { // RUN --mount=...
		words = words[1:]
	}
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("Dockerfile RUN %q: want [NAME=value...] go build ...", run)
	}
	for _, w := range words {
		if w == "&&" || w == ";" || w == "|" {
			t.Fatalf("Dockerfile RUN %q: got %q, want go build alone on its RUN line", run, w)
		}
	}
	return env, words[1:]
}

// shellWords splits s into words as sh would, honouring single and double
// quotes and backslashes; it does not expand anything.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			} else {
				w.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// execForm parses a JSON-array command, as ENTRYPOINT and CMD must have in
// a shell-less image.
func execForm(t *testing.T, line, s string) []string {
	t.Helper()
	var cmd []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &cmd); err != nil || len(cmd) == 0 {
		t.Fatalf("Dockerfile %q: want the exec form [\"/binary\", ...] (distroless has no shell): %v", line, err)
	}
	return cmd
}

// flagValue returns the value of a "-name value" argument, or "".
func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// env is the image's environment: what its ENV sets, and nothing else.
func (df *dockerfile) env(t *testing.T) []string {
	t.Helper()
	for _, want := range []string{"HOST", "PORT"} {
		if !slices.ContainsFunc(df.envs, func(kv string) bool { return strings.HasPrefix(kv, want+"=") }) {
			t.Errorf("Dockerfile ENV: got %q, want %s set", df.envs, want)
		}
	}
	return slices.Clone(df.envs)
}

// userspec is the image's USER as numeric uid:gid for chroot --userspec.
func (df *dockerfile) userspec(t *testing.T) string {
	t.Helper()
	name, group, _ := strings.Cut(df.user, ":")
	if group == "" {
		group = name
	}
	ids := []string{name, group}
	for i, s := range ids {
		if id, ok := distrolessUsers[s]; ok {
			ids[i] = id
		}
		if _, err := strconv.Atoi(ids[i]); err != nil {
			t.Fatalf("Dockerfile USER %q: got %q, want a distroless user name or a number", df.user, s)
		}
	}
	if ids[0] == "0" {
		t.Fatalf("Dockerfile USER %q: got root, want a non-root user", df.user)
	}
	return ids[0] + ":" + ids[1]
}

// healthcheckTimeout is the HEALTHCHECK's --timeout (Docker's default 30 s).
func (df *dockerfile) healthcheckTimeout(t *testing.T) time.Duration {
	t.Helper()
	for _, f := range df.hcFlags {
		if v, ok := strings.CutPrefix(f, "--timeout="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("Dockerfile HEALTHCHECK %s: %v", f, err)
			}
			return d
		}
	}
	return 30 * time.Second
}

// buildLikeDockerfile runs the Dockerfile's go build, in the module root as
// the Dockerfile's WORKDIR holds it, with the output moved into rootfs at
// the path the image copies it to. It first checks that the command has
// the flags the image depends on: cgo off (distroless/static has no libc),
// -trimpath, stripping, and the version stamp.
func buildLikeDockerfile(t *testing.T, df *dockerfile, rootfs string) string {
	t.Helper()
	for _, row := range []struct {
		what string
		ok   bool
	}{
		{"CGO_ENABLED=0 (distroless/static has no libc)", slices.Contains(df.buildEnv, "CGO_ENABLED=0")},
		{"-trimpath", slices.Contains(df.buildArgs, "-trimpath")},
		{`-ldflags "-s -w -X main.version=${VERSION}"`, flagValue(df.buildArgs, "-ldflags") == "-s -w -X main.version="+containerVersion},
	} {
		if !row.ok {
			t.Errorf("Dockerfile go build: got env %q, args %q; want %s", df.buildEnv, df.buildArgs, row.what)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	bin := filepath.Join(rootfs, df.copyDst)
	args := slices.Clone(df.buildArgs)
	args[slices.Index(args, "-o")+1] = bin
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = root
	build.Env = append(os.Environ(), df.buildEnv...)
	start := time.Now()
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(df.buildEnv, " "), strings.Join(args, " "), err, out)
	}
	t.Logf("built with the Dockerfile's command in %v: %s go %s",
		time.Since(start).Round(time.Millisecond), strings.Join(df.buildEnv, " "), strings.Join(args, " "))
	return bin
}

// checkStaticStripped checks that the binary needs no dynamic loader or
// shared library, and carries neither a symbol table nor DWARF.
func checkStaticStripped(t *testing.T, bin string) {
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binary size %.2f MiB (%d bytes)", mib(fi.Size()), fi.Size())

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("got a %v program header, want none in a static binary", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("got imported libraries %q (error %v), want none", libs, err)
	}
	for _, name := range []string{".interp", ".dynamic", ".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(name) != nil {
			t.Errorf("got a %s section, want none (static: no .interp, .dynamic; -s: no .symtab; -w: no DWARF)", name)
		}
	}
}

// checkVersionStamp checks that the binary records the flags it was built
// with and carries the version string the -X flag set.
func checkVersionStamp(t *testing.T, bin string) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for _, row := range []struct{ key, want string }{
		{"CGO_ENABLED", "0"},
		{"-trimpath", "true"},
		// With -trimpath, go build leaves -ldflags out of the build info,
		// as they may hold paths (go.dev/issue/52372); so the version is
		// looked for in the binary's data below, and in its log.
		{"-ldflags", ""},
	} {
		if got := settings[row.key]; got != row.want {
			t.Errorf("build setting %s: got %q, want %q", row.key, got, row.want)
		}
	}
	if info.Main.Path != "github.com/atenex/gateway" {
		t.Errorf("main module: got %q, want github.com/atenex/gateway", info.Main.Path)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte(containerVersion)); n != 1 {
		t.Errorf("got %q %d times in the binary, want it once, as main.version's value", containerVersion, n)
	}
	t.Logf("built by %s; build settings %q; version %q in the binary's data", info.GoVersion, info.Settings, containerVersion)
}

// launchChrooted starts command in rootfs as user (uid:gid) with only env,
// the way a container runtime starts an image's ENTRYPOINT. chroot execs
// the command, so the process is the gateway itself and receives signals
// directly. The process is killed, if still running, when the test ends,
// and its output is shown if the test failed.
func launchChrooted(t *testing.T, chroot, rootfs, user string, env []string, command ...string) *gateway {
	t.Helper()
	cmd := exec.Command(chroot, append([]string{"--userspec=" + user, rootfs}, command...)...)
	cmd.Env = env
	return startProcess(t, cmd, "chrooted gateway")
}

// runChrooted runs command in rootfs as user with only env, and returns its
// exit code, how long it took, and its output.
func runChrooted(t *testing.T, chroot, rootfs, user string, env []string, command ...string) (int, time.Duration, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chroot, append([]string{"--userspec=" + user, rootfs}, command...)...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %q: %v", cmd.Args, err)
	}
	return cmd.ProcessState.ExitCode(), took, string(out)
}

// waitServing waits for the gateway's "Gateway listening" line, points g
// at its port on 127.0.0.1 (it listens on the image's HOST, 0.0.0.0), and
// returns once GET /health answers 200. It returns the port.
func waitServing(t *testing.T, g *gateway) string {
	t.Helper()
	listening, err := g.waitEvent("Gateway listening", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := listening["address"].(string)
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		t.Fatalf("got listening line %v, want an address with a port", listening)
	}
	g.addr = net.JoinHostPort("127.0.0.1", port)
	g.base = "http://" + g.addr
	transport := &http.Transport{DisableCompression: true}
	t.Cleanup(transport.CloseIdleConnections)
	g.client = &http.Client{Transport: transport, Timeout: 10 * time.Second}

	g.waitHealthy(t)
	return port
}

// procIDs returns the real uid and gid of process pid.
func procIDs(t *testing.T, pid int) []string {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 2)
	for line := range strings.Lines(string(status)) {
		for i, key := range []string{"Uid:", "Gid:"} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					ids[i] = f[0]
				}
			}
		}
	}
	return ids
}

// checkProxies sends a small GET and a 1 MiB upload through the chrooted
// gateway to the mock ingest service.
func checkProxies(t *testing.T, g *gateway) {
	const size = MiB
	for _, row := range []struct {
		name, method, path string
		body               int64
		want               map[string]any
	}{
		{"ping", http.MethodGet, "/api/v1/ingest/ping", 0, map[string]any{"status": "ok"}},
		{"upload", http.MethodPost, "/api/v1/ingest/sink", size, map[string]any{
			"bytes": float64(size), "sha256": patternDigest(t, size),
		}},
	} {
		t.Run(row.name, func(t *testing.T) {
			var body io.Reader
			if row.body > 0 {
				body = ingestmock.Pattern(row.body)
			}
			req, err := http.NewRequest(row.method, g.base+row.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = row.body
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: got status %d, want 200", row.method, row.path, resp.StatusCode)
			}
			var got map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("%s %s: decoding the answer: %v", row.method, row.path, err)
			}
			for k, want := range row.want {
				if got[k] != want {
					t.Errorf("%s %s: got %s %v, want %v", row.method, row.path, k, got[k], want)
				}
			}
			if resp.Header.Get("X-Request-ID") == "" {
				t.Errorf("%s %s: got no X-Request-ID, want one", row.method, row.path)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
