package config_test

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atenex/gateway/config"
)

// fields lists every field of c by name, with IngestURL as its string, so
// two configs can be compared field by field with readable failures. It
// reads the struct, so a new field is compared without being added here.
func fields(c config.Config) map[string]any {
	m := map[string]any{}
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		m[v.Type().Field(i).Name] = v.Field(i).Interface()
	}
	ingest := "<nil>"
	if c.IngestURL != nil {
		ingest = c.IngestURL.String()
	}
	m["IngestURL"] = ingest
	return m
}

// checkConfig reports every field of got that differs from want.
func checkConfig(t *testing.T, got, want config.Config) {
	t.Helper()
	g, w := fields(got), fields(want)
	names := make([]string, 0, len(w))
	for name := range w {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if g[name] != w[name] {
			t.Errorf("%s: got %v, want %v", name, g[name], w[name])
		}
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := config.Default()
	want := map[string]any{
		"ProjectName":             "Atenex API Gateway (Simplified)",
		"APIPrefix":               "/api/v1",
		"IngestURL":               "http://ingest-api-service.nyro-develop.svc.cluster.local:80",
		"LogLevel":                "INFO",
		"UpstreamTimeout":         60 * time.Second,
		"UpstreamConnectTimeout":  15 * time.Second,
		"UpstreamMaxConns":        200,
		"UpstreamMaxIdleConns":    100,
		"UpstreamIdleConnTimeout": 4 * time.Second,
		"FrontendURL":             "",
		"ShutdownTimeout":         30 * time.Second,
		"ShutdownDelay":           time.Duration(0),
		"UpstreamPoolTimeout":     5 * time.Second,
		"MaxHeaderBytes":          int64(16 << 10),
		"MaxBodySize":             int64(1 << 30),
		"ClientHeaderTimeout":     10 * time.Second,
		"ClientBodyIdleTimeout":   60 * time.Second,
		"ClientIdleTimeout":       75 * time.Second,
		"MaxInFlight":             512,
		"MaxInFlightTransfers":    512,
		"MaxQueued":               4096,
		"QueueTimeout":            5 * time.Second,
		"QueueTargetDelay":        100 * time.Millisecond,
		"MaxClientConns":          4096,
		"LingeringTime":           30 * time.Second,
		"LingeringTimeout":        5 * time.Second,
		"Splice":                  true,
		"AdminPort":               9090,
		"Host":                    "0.0.0.0",
		"Port":                    8080,
		"AuthMode":                "none",
		"JWTSecret":               "",
		"JWKSURL":                 "",
		"JWTAlgorithms":           "",
		"JWTIssuer":               "",
		"JWTAudience":             "",
		"JWTLeeway":               30 * time.Second,
		"JWTCompanyClaim":         "company_id",
		"JWTUserClaim":            "sub",
		"JWTEmailClaim":           "email",
		"JWKSRefresh":             5 * time.Minute,
		"ForwardAuthorization":    true,
		"JWTCacheSize":            10000,
	}
	got := fields(c)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("Default().%s: got %v, want %v", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("checked %d fields, fields() lists %d", len(want), len(got))
	}
	if got, want := c.IngestURL.String(), config.DefaultIngestServiceURL; got != want {
		t.Errorf("Default().IngestURL: got %q, want DefaultIngestServiceURL %q", got, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
	}{
		{"nil", nil},
		{"empty", []string{}},
		{"only unrelated variables", []string{"PATH=/usr/bin", "HOME=/root", "LOG_LEVEL=verbose"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(tt.environ)
			if err != nil {
				t.Fatalf("Load: got error %v, want nil", err)
			}
			checkConfig(t, c, config.Default())
			if got, want := c.Addr(), "0.0.0.0:8080"; got != want {
				t.Errorf("Addr(): got %q, want %q", got, want)
			}
			wantOrigins := []string{"http://localhost:3000", "http://127.0.0.1:3000"}
			if got := c.AllowedOrigins(); !slices.Equal(got, wantOrigins) {
				t.Errorf("AllowedOrigins(): got %q, want %q", got, wantOrigins)
			}
		})
	}
}

func TestLoadParsesEachVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		// edit turns Default() into the wanted config.
		edit func(c *config.Config)
	}{
		{
			name:    "project name",
			environ: []string{"GATEWAY_PROJECT_NAME=Atenex Gateway"},
			edit:    func(c *config.Config) { c.ProjectName = "Atenex Gateway" },
		},
		{
			name:    "lingering close bounds",
			environ: []string{"GATEWAY_LINGERING_TIME=10", "GATEWAY_LINGERING_TIMEOUT=0.5"},
			edit: func(c *config.Config) {
				c.LingeringTime, c.LingeringTimeout = 10*time.Second, 500*time.Millisecond
			},
		},
		{
			name: "admission",
			environ: []string{"GATEWAY_MAX_IN_FLIGHT_TRANSFERS=64", "GATEWAY_MAX_QUEUED=0",
				"GATEWAY_QUEUE_TIMEOUT=2.5", "GATEWAY_QUEUE_TARGET_DELAY=0"},
			edit: func(c *config.Config) {
				c.MaxInFlightTransfers, c.MaxQueued = 64, 0
				c.QueueTimeout, c.QueueTargetDelay = 2500*time.Millisecond, 0
			},
		},
		{
			name:    "splice off",
			environ: []string{"GATEWAY_SPLICE=false"},
			edit:    func(c *config.Config) { c.Splice = false },
		},
		{
			name:    "splice off, pydantic spelling",
			environ: []string{"gateway_splice= Off "},
			edit:    func(c *config.Config) { c.Splice = false },
		},
		{
			name:    "splice on",
			environ: []string{"GATEWAY_SPLICE=1"},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "api prefix",
			environ: []string{"GATEWAY_API_V1_STR=/api/v2"},
			edit:    func(c *config.Config) { c.APIPrefix = "/api/v2" },
		},
		{
			name:    "api prefix one segment",
			environ: []string{"GATEWAY_API_V1_STR=/v1"},
			edit:    func(c *config.Config) { c.APIPrefix = "/v1" },
		},
		{
			name:    "ingest url with port",
			environ: []string{"GATEWAY_INGEST_SERVICE_URL=http://ingest:8000"},
			edit:    func(c *config.Config) { c.IngestURL.Host = "ingest:8000" },
		},
		{
			name:    "ingest url https without port",
			environ: []string{"GATEWAY_INGEST_SERVICE_URL=https://ingest.example.com"},
			edit: func(c *config.Config) {
				c.IngestURL.Scheme = "https"
				c.IngestURL.Host = "ingest.example.com"
			},
		},
		{
			name:    "ingest url path is parsed",
			environ: []string{"GATEWAY_INGEST_SERVICE_URL=http://ingest:8000/ignored/path"},
			edit: func(c *config.Config) {
				c.IngestURL.Host = "ingest:8000"
				c.IngestURL.Path = "/ignored/path"
			},
		},
		{
			name:    "ingest url ipv6",
			environ: []string{"GATEWAY_INGEST_SERVICE_URL=http://[::1]:8001"},
			edit:    func(c *config.Config) { c.IngestURL.Host = "[::1]:8001" },
		},
		{
			name:    "log level lower case",
			environ: []string{"GATEWAY_LOG_LEVEL=debug"},
			edit:    func(c *config.Config) { c.LogLevel = "DEBUG" },
		},
		{
			name:    "log level mixed case",
			environ: []string{"GATEWAY_LOG_LEVEL=Warning"},
			edit:    func(c *config.Config) { c.LogLevel = "WARNING" },
		},
		{
			name:    "log level upper case",
			environ: []string{"GATEWAY_LOG_LEVEL=CRITICAL"},
			edit:    func(c *config.Config) { c.LogLevel = "CRITICAL" },
		},
		{
			name:    "log level error",
			environ: []string{"GATEWAY_LOG_LEVEL=error"},
			edit:    func(c *config.Config) { c.LogLevel = "ERROR" },
		},
		{
			name:    "timeout whole seconds",
			environ: []string{"GATEWAY_HTTP_CLIENT_TIMEOUT=60"},
			edit:    func(c *config.Config) { c.UpstreamTimeout = 60 * time.Second },
		},
		{
			name:    "timeout fraction",
			environ: []string{"GATEWAY_HTTP_CLIENT_TIMEOUT=0.5"},
			edit:    func(c *config.Config) { c.UpstreamTimeout = 500 * time.Millisecond },
		},
		{
			name:    "timeout large",
			environ: []string{"GATEWAY_HTTP_CLIENT_TIMEOUT=3600"},
			edit:    func(c *config.Config) { c.UpstreamTimeout = time.Hour },
		},
		{
			name:    "connect timeout",
			environ: []string{"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT=2.5"},
			edit:    func(c *config.Config) { c.UpstreamConnectTimeout = 2500 * time.Millisecond },
		},
		{
			name:    "idle conn timeout",
			environ: []string{"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT=3"},
			edit:    func(c *config.Config) { c.UpstreamIdleConnTimeout = 3 * time.Second },
		},
		{
			name:    "max connections",
			environ: []string{"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=500"},
			edit:    func(c *config.Config) { c.UpstreamMaxConns = 500 },
		},
		{
			name:    "max keepalive connections",
			environ: []string{"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS=150"},
			edit:    func(c *config.Config) { c.UpstreamMaxIdleConns = 150 },
		},
		{
			name:    "max keepalive connections zero",
			environ: []string{"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS=0"},
			edit:    func(c *config.Config) { c.UpstreamMaxIdleConns = 0 },
		},
		{
			name: "max keepalive equal to max connections",
			environ: []string{
				"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=10",
				"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS=10",
			},
			edit: func(c *config.Config) { c.UpstreamMaxConns, c.UpstreamMaxIdleConns = 10, 10 },
		},
		{
			name:    "frontend url",
			environ: []string{"GATEWAY_VERCEL_FRONTEND_URL=https://atenex.vercel.app"},
			edit:    func(c *config.Config) { c.FrontendURL = "https://atenex.vercel.app" },
		},
		{
			name:    "frontend url trailing slash dropped and lower-cased",
			environ: []string{"GATEWAY_VERCEL_FRONTEND_URL=HTTPS://Atenex.Vercel.App/"},
			edit:    func(c *config.Config) { c.FrontendURL = "https://atenex.vercel.app" },
		},
		{
			name:    "frontend url with port",
			environ: []string{"GATEWAY_VERCEL_FRONTEND_URL=http://staging.example.com:8443"},
			edit:    func(c *config.Config) { c.FrontendURL = "http://staging.example.com:8443" },
		},
		{
			name:    "frontend url empty means unset",
			environ: []string{"GATEWAY_VERCEL_FRONTEND_URL="},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "shutdown timeout",
			environ: []string{"GATEWAY_SHUTDOWN_TIMEOUT=10"},
			edit:    func(c *config.Config) { c.ShutdownTimeout = 10 * time.Second },
		},
		{
			name:    "port",
			environ: []string{"PORT=9091"},
			edit:    func(c *config.Config) { c.Port = 9091 },
		},
		{
			name:    "port zero picks a free port",
			environ: []string{"PORT=0"},
			edit:    func(c *config.Config) { c.Port = 0 },
		},
		{
			name:    "port highest",
			environ: []string{"PORT=65535"},
			edit:    func(c *config.Config) { c.Port = 65535 },
		},
		{
			name:    "host ipv4",
			environ: []string{"HOST=127.0.0.1"},
			edit:    func(c *config.Config) { c.Host = "127.0.0.1" },
		},
		{
			name:    "host ipv6",
			environ: []string{"HOST=::1"},
			edit:    func(c *config.Config) { c.Host = "::1" },
		},
		{
			name:    "host name",
			environ: []string{"HOST=localhost"},
			edit:    func(c *config.Config) { c.Host = "localhost" },
		},
		{
			name: "all at once",
			environ: []string{
				"GATEWAY_PROJECT_NAME=P",
				"GATEWAY_API_V1_STR=/p",
				"GATEWAY_INGEST_SERVICE_URL=https://i:9",
				"GATEWAY_LOG_LEVEL=error",
				"GATEWAY_HTTP_CLIENT_TIMEOUT=1",
				"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT=2",
				"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT=3",
				"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=4",
				"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS=4",
				"GATEWAY_VERCEL_FRONTEND_URL=https://f",
				"GATEWAY_SHUTDOWN_TIMEOUT=5",
				"PORT=6",
				"HOST=127.0.0.7",
			},
			edit: func(c *config.Config) {
				c.ProjectName = "P"
				c.APIPrefix = "/p"
				c.IngestURL.Scheme, c.IngestURL.Host = "https", "i:9"
				c.LogLevel = "ERROR"
				c.UpstreamTimeout = 1 * time.Second
				c.UpstreamConnectTimeout = 2 * time.Second
				c.UpstreamIdleConnTimeout = 3 * time.Second
				c.UpstreamMaxConns, c.UpstreamMaxIdleConns = 4, 4
				c.FrontendURL = "https://f"
				c.ShutdownTimeout = 5 * time.Second
				c.Port = 6
				c.Host = "127.0.0.7"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Load(tt.environ)
			if err != nil {
				t.Fatalf("Load(%q): got error %v, want nil", tt.environ, err)
			}
			want := config.Default()
			tt.edit(&want)
			checkConfig(t, got, want)
		})
	}
}

func TestLoadIngestURLParts(t *testing.T) {
	t.Parallel()
	c, err := config.Load([]string{"GATEWAY_INGEST_SERVICE_URL=https://ingest.example.com:8443/base/path"})
	if err != nil {
		t.Fatalf("Load: got error %v, want nil", err)
	}
	tests := []struct {
		name, got, want string
	}{
		{"scheme", c.IngestURL.Scheme, "https"},
		{"host", c.IngestURL.Host, "ingest.example.com:8443"},
		{"hostname", c.IngestURL.Hostname(), "ingest.example.com"},
		{"port", c.IngestURL.Port(), "8443"},
		{"path", c.IngestURL.Path, "/base/path"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("IngestURL %s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestLoadDoesNotShareDefaultURL(t *testing.T) {
	t.Parallel()
	a, err := config.Load(nil)
	if err != nil {
		t.Fatalf("Load: got error %v, want nil", err)
	}
	a.IngestURL.Host = "changed:1"
	b, err := config.Load(nil)
	if err != nil {
		t.Fatalf("Load: got error %v, want nil", err)
	}
	if got, want := b.IngestURL.String(), config.DefaultIngestServiceURL; got != want {
		t.Errorf("second Load IngestURL after editing the first: got %q, want %q", got, want)
	}
}

func TestConfigAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		host string
		port int
		want string
	}{
		{"default", "0.0.0.0", 8080, "0.0.0.0:8080"},
		{"loopback", "127.0.0.1", 9000, "127.0.0.1:9000"},
		{"ipv6 bracketed", "::1", 8080, "[::1]:8080"},
		{"empty host listens everywhere", "", 8080, ":8080"},
		{"free port", "127.0.0.1", 0, "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			c.Host, c.Port = tt.host, tt.port
			if got := c.Addr(); got != tt.want {
				t.Errorf("Addr(): got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadAllowedOrigins(t *testing.T) {
	t.Parallel()
	local := []string{"http://localhost:3000", "http://127.0.0.1:3000"}
	tests := []struct {
		name     string
		frontend string // value of GATEWAY_VERCEL_FRONTEND_URL; "" leaves it unset
		want     []string
	}{
		{"unset", "", local},
		{"frontend added", "https://atenex.vercel.app", append(slices.Clone(local), "https://atenex.vercel.app")},
		{"frontend normalized", "HTTPS://Atenex.Vercel.App/", append(slices.Clone(local), "https://atenex.vercel.app")},
		{"localhost not repeated", "http://localhost:3000", local},
		{"loopback not repeated", "http://127.0.0.1:3000/", local},
		{"localhost upper case not repeated", "HTTP://LOCALHOST:3000", local},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var environ []string
			if tt.frontend != "" {
				environ = []string{"GATEWAY_VERCEL_FRONTEND_URL=" + tt.frontend}
			}
			c, err := config.Load(environ)
			if err != nil {
				t.Fatalf("Load(%q): got error %v, want nil", environ, err)
			}
			if got := c.AllowedOrigins(); !slices.Equal(got, tt.want) {
				t.Errorf("AllowedOrigins(): got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		edit    func(c *config.Config)
	}{
		{
			name:    "lower-case name",
			environ: []string{"gateway_log_level=debug"},
			edit:    func(c *config.Config) { c.LogLevel = "DEBUG" },
		},
		{
			name:    "mixed-case name",
			environ: []string{"Gateway_Http_Client_Timeout=7"},
			edit:    func(c *config.Config) { c.UpstreamTimeout = 7 * time.Second },
		},
		{
			name:    "lower-case port and host",
			environ: []string{"port=9000", "host=127.0.0.1"},
			edit:    func(c *config.Config) { c.Port, c.Host = 9000, "127.0.0.1" },
		},
		{
			name:    "later entry overrides earlier",
			environ: []string{"GATEWAY_LOG_LEVEL=debug", "GATEWAY_LOG_LEVEL=error"},
			edit:    func(c *config.Config) { c.LogLevel = "ERROR" },
		},
		{
			name:    "later entry overrides earlier of another case",
			environ: []string{"gateway_log_level=debug", "GATEWAY_LOG_LEVEL=warning"},
			edit:    func(c *config.Config) { c.LogLevel = "WARNING" },
		},
		{
			name:    "later lower-case entry overrides earlier upper-case",
			environ: []string{"PORT=9000", "port=9001"},
			edit:    func(c *config.Config) { c.Port = 9001 },
		},
		{
			name:    "environment fixes an invalid .env value",
			environ: []string{"GATEWAY_HTTP_CLIENT_TIMEOUT=abc", "GATEWAY_HTTP_CLIENT_TIMEOUT=5"},
			edit:    func(c *config.Config) { c.UpstreamTimeout = 5 * time.Second },
		},
		{
			name:    "unknown GATEWAY_ name ignored",
			environ: []string{"GATEWAY_NOT_A_SETTING=whatever", "GATEWAY_=x", "GATEWAY_LOG_LEVELS=verbose"},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "unrelated variables ignored",
			environ: []string{"LOG_LEVEL=verbose", "HTTP_CLIENT_TIMEOUT=abc", "PORTS=x", "HOSTNAME=a b", "XGATEWAY_LOG_LEVEL=verbose"},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "entry without equals ignored",
			environ: []string{"GATEWAY_LOG_LEVEL", "PORT", "GATEWAY_HTTP_CLIENT_TIMEOUT"},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "entry without equals does not clear earlier value",
			environ: []string{"GATEWAY_LOG_LEVEL=debug", "GATEWAY_LOG_LEVEL"},
			edit:    func(c *config.Config) { c.LogLevel = "DEBUG" },
		},
		{
			name:    "empty name ignored",
			environ: []string{"=x", "=C:=C:\\"},
			edit:    func(c *config.Config) {},
		},
		{
			name:    "value keeps later equals signs",
			environ: []string{"GATEWAY_PROJECT_NAME=a=b=c"},
			edit:    func(c *config.Config) { c.ProjectName = "a=b=c" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Load(tt.environ)
			if err != nil {
				t.Fatalf("Load(%q): got error %v, want nil", tt.environ, err)
			}
			want := config.Default()
			tt.edit(&want)
			checkConfig(t, got, want)
		})
	}
}

// invalid is one rule broken by one variable.
type invalid struct {
	name  string
	key   string
	value string
	// also holds other, valid entries the rule depends on.
	also []string
}

func invalidValues() []invalid {
	tests := []invalid{
		{name: "project name empty", key: "GATEWAY_PROJECT_NAME", value: ""},
		{name: "splice not a bool", key: "GATEWAY_SPLICE", value: "sometimes"},
		{name: "splice empty", key: "GATEWAY_SPLICE", value: ""},
		{name: "project name blank", key: "GATEWAY_PROJECT_NAME", value: "   "},

		{name: "api prefix without leading slash", key: "GATEWAY_API_V1_STR", value: "api/v1"},
		{name: "api prefix with trailing slash", key: "GATEWAY_API_V1_STR", value: "/api/v1/"},
		{name: "api prefix slash only", key: "GATEWAY_API_V1_STR", value: "/"},
		{name: "api prefix empty", key: "GATEWAY_API_V1_STR", value: ""},
		{name: "api prefix with query", key: "GATEWAY_API_V1_STR", value: "/api?v=1"},
		{name: "api prefix with space", key: "GATEWAY_API_V1_STR", value: "/api v1"},
		{name: "api prefix with fragment", key: "GATEWAY_API_V1_STR", value: "/api#v1"},
		{name: "api prefix with double slash", key: "GATEWAY_API_V1_STR", value: "/api//v1"},
		{name: "api prefix with router wildcard", key: "GATEWAY_API_V1_STR", value: "/api/*"},
		{name: "api prefix with router parameter", key: "GATEWAY_API_V1_STR", value: "/api/:v"},

		{name: "ingest url without scheme", key: "GATEWAY_INGEST_SERVICE_URL", value: "ingest:80"},
		{name: "ingest url host only", key: "GATEWAY_INGEST_SERVICE_URL", value: "ingest"},
		{name: "ingest url ftp", key: "GATEWAY_INGEST_SERVICE_URL", value: "ftp://x"},
		{name: "ingest url without host", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://"},
		{name: "ingest url port without host", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://:80"},
		{name: "ingest url with user info", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://user:pw@x"},
		{name: "ingest url port zero", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://x:0"},
		{name: "ingest url port too large", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://x:99999"},
		{name: "ingest url port not a number", key: "GATEWAY_INGEST_SERVICE_URL", value: "http://x:http"},
		{name: "ingest url empty", key: "GATEWAY_INGEST_SERVICE_URL", value: ""},

		{name: "log level unknown", key: "GATEWAY_LOG_LEVEL", value: "verbose"},
		{name: "log level warn abbreviation", key: "GATEWAY_LOG_LEVEL", value: "WARN"},
		{name: "log level empty", key: "GATEWAY_LOG_LEVEL", value: ""},

		{name: "max connections zero", key: "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", value: "0"},
		{name: "max connections not a number", key: "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", value: "x"},
		{name: "max connections fraction", key: "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", value: "1.5"},
		{name: "max connections negative", key: "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", value: "-5"},
		{name: "max connections too large", key: "GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS", value: "2000000"},
		{name: "max keepalive negative", key: "GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", value: "-1"},
		{name: "max keepalive not a number", key: "GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", value: "x"},
		{
			name: "max keepalive above max connections", key: "GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", value: "20",
			also: []string{"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=10"},
		},
		{name: "max keepalive above default max connections", key: "GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", value: "201"},

		{name: "frontend url with path", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "https://app.example.com/login"},
		{name: "frontend url with slash and query", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "https://app.example.com/?x=1"},
		{name: "frontend url with query", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "https://app.example.com?x=1"},
		{name: "frontend url with fragment", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "https://app.example.com#top"},
		{name: "frontend url ftp", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "ftp://app.example.com"},
		{name: "frontend url without scheme", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "app.example.com"},
		{name: "frontend url wildcard", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "*"},
		{name: "frontend url with user info", key: "GATEWAY_VERCEL_FRONTEND_URL", value: "https://me@app.example.com"},

		{name: "port too large", key: "PORT", value: "70000"},
		{name: "port name", key: "PORT", value: "http"},
		{name: "port negative", key: "PORT", value: "-1"},
		{name: "port empty", key: "PORT", value: ""},

		{name: "host with space", key: "HOST", value: "a b"},
		{name: "host url", key: "HOST", value: "http://x"},
		{name: "host with port", key: "HOST", value: "127.0.0.1:8080"},
	}
	for _, key := range []string{
		"GATEWAY_HTTP_CLIENT_TIMEOUT",
		"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT",
		"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT",
		"GATEWAY_SHUTDOWN_TIMEOUT",
	} {
		for _, value := range []string{"0", "-1", "abc", "1e12", "", "NaN", "Inf", "10s"} {
			tests = append(tests, invalid{name: fmt.Sprintf("%s %q", strings.ToLower(key), value), key: key, value: value})
		}
	}
	return tests
}

func TestLoadRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	for _, tt := range invalidValues() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			environ := append(slices.Clone(tt.also), tt.key+"="+tt.value)
			_, err := config.Load(environ)
			if err == nil {
				t.Fatalf("Load(%q): got nil error, want one naming %s", environ, tt.key)
			}
			msg := err.Error()
			if lines := strings.Split(msg, "\n"); len(lines) != 1 {
				t.Errorf("Load(%q): got %d problems %q, want 1", environ, len(lines), lines)
			}
			if !strings.HasPrefix(msg, tt.key+": ") {
				t.Errorf("error %q: does not start with the variable name %q", msg, tt.key+": ")
			}
			if quoted := strconv.Quote(tt.value); !strings.Contains(msg, quoted) {
				t.Errorf("error %q: does not quote the bad value %s", msg, quoted)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	// Every variable once, each broken; a lower-case name and a .env entry
	// overridden by a broken environment entry are among them.
	environ := []string{
		"GATEWAY_LOG_LEVEL=info",
		"GATEWAY_PROJECT_NAME= ",
		"GATEWAY_API_V1_STR=api",
		"gateway_ingest_service_url=ingest:80",
		"GATEWAY_LOG_LEVEL=verbose",
		"GATEWAY_HTTP_CLIENT_TIMEOUT=0",
		"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT=-1",
		"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT=abc",
		"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=10",
		"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS=20",
		"GATEWAY_VERCEL_FRONTEND_URL=ftp://app",
		"GATEWAY_SHUTDOWN_TIMEOUT=1e12",
		"PORT=http",
		"HOST=a b",
		"GATEWAY_UNKNOWN=ignored",
	}
	want := []struct{ key, value string }{
		{"GATEWAY_PROJECT_NAME", " "},
		{"GATEWAY_API_V1_STR", "api"},
		{"GATEWAY_INGEST_SERVICE_URL", "ingest:80"},
		{"GATEWAY_LOG_LEVEL", "verbose"},
		{"GATEWAY_HTTP_CLIENT_TIMEOUT", "0"},
		{"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT", "-1"},
		{"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT", "abc"},
		{"GATEWAY_HTTP_CLIENT_MAX_KEEPALIVE_CONNECTIONS", "20"},
		{"GATEWAY_VERCEL_FRONTEND_URL", "ftp://app"},
		{"GATEWAY_SHUTDOWN_TIMEOUT", "1e12"},
		{"PORT", "http"},
		{"HOST", "a b"},
	}
	_, err := config.Load(environ)
	if err == nil {
		t.Fatal("Load: got nil error, want one per broken variable")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for _, w := range want {
		prefix := w.key + ": "
		found := false
		for _, line := range lines {
			if strings.HasPrefix(line, prefix) {
				found = true
				if quoted := strconv.Quote(w.value); !strings.Contains(line, quoted) {
					t.Errorf("problem %q: does not quote the bad value %s", line, quoted)
				}
			}
		}
		if !found {
			t.Errorf("%s: not reported, got:\n%s", w.key, err)
		}
	}
}

// A timeout below a nanosecond is a positive number of seconds but becomes
// a zero time.Duration, which net.Dialer and fasthttp read as "no timeout"
// or "use the library default": the opposite of what was asked, and unlike
// "0", which is rejected.
func TestLoadRejectsTimeoutsThatRoundToZero(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"GATEWAY_HTTP_CLIENT_TIMEOUT",
		"GATEWAY_HTTP_CLIENT_CONNECT_TIMEOUT",
		"GATEWAY_HTTP_CLIENT_IDLE_CONN_TIMEOUT",
		"GATEWAY_SHUTDOWN_TIMEOUT",
	} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			if _, err := config.Load([]string{key + "=1e-10"}); err == nil {
				t.Errorf("Load(%s=1e-10): got nil error (the timeout becomes 0s), want a positive-seconds error", key)
			}
		})
	}
}

// Setting only GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS below the keep-alive
// default (100) is a valid request on its own, and one the original
// (httpx.Limits) accepted; the problem, if any, must not be blamed on an
// unset variable with an empty quoted value.
func TestLoadMaxConnectionsBelowKeepaliveDefault(t *testing.T) {
	t.Parallel()
	environ := []string{"GATEWAY_HTTP_CLIENT_MAX_CONNECTIONS=50"}
	c, err := config.Load(environ)
	if err != nil {
		t.Fatalf("Load(%q): got error %v, want nil", environ, err)
	}
	if c.UpstreamMaxConns != 50 {
		t.Errorf("UpstreamMaxConns: got %d, want 50", c.UpstreamMaxConns)
	}
	if c.UpstreamMaxIdleConns > c.UpstreamMaxConns {
		t.Errorf("UpstreamMaxIdleConns: got %d, want at most UpstreamMaxConns (%d)", c.UpstreamMaxIdleConns, c.UpstreamMaxConns)
	}
}

func TestLoadAuth(t *testing.T) {
	t.Parallel()
	secret := "GATEWAY_JWT_SECRET=0123456789abcdef0123456789abcdef"
	tests := []struct {
		name     string
		environ  []string
		wantErrs []string // substrings, every one must appear
		check    func(config.Config) string
	}{
		{name: "jwt with a secret defaults to HS256", environ: []string{"GATEWAY_AUTH_MODE=JWT", secret},
			check: func(c config.Config) string {
				if c.AuthMode != "jwt" || c.JWTAlgorithms != "HS256" {
					return c.AuthMode + " " + c.JWTAlgorithms
				}
				return ""
			}},
		{name: "jwks defaults to RS256,ES256", environ: []string{"GATEWAY_AUTH_MODE=jwt", "GATEWAY_JWKS_URL=https://x.supabase.co/auth/v1/.well-known/jwks.json"},
			check: func(c config.Config) string {
				if c.JWTAlgorithms != "RS256,ES256" {
					return c.JWTAlgorithms
				}
				return ""
			}},
		{name: "algorithms canonicalised", environ: []string{"GATEWAY_AUTH_MODE=jwt", secret, "GATEWAY_JWT_ALGORITHMS= hs256 ,HS512,hs256", "GATEWAY_JWT_COMPANY_CLAIM=app_metadata.company_id", "GATEWAY_FORWARD_AUTHORIZATION=false"},
			check: func(c config.Config) string {
				if c.JWTAlgorithms != "HS256,HS512" || c.JWTCompanyClaim != "app_metadata.company_id" || c.ForwardAuthorization {
					return c.JWTAlgorithms
				}
				return ""
			}},
		{name: "cache size", environ: []string{"GATEWAY_AUTH_MODE=jwt", secret, "GATEWAY_JWT_CACHE_SIZE=0"},
			check: func(c config.Config) string {
				if c.JWTCacheSize != 0 {
					return fmt.Sprintf("JWTCacheSize %d, want 0", c.JWTCacheSize)
				}
				return ""
			}},
		{name: "every problem at once", environ: []string{"GATEWAY_AUTH_MODE=jwt", "GATEWAY_JWT_SECRET=short", "GATEWAY_JWT_CACHE_SIZE=-1", "GATEWAY_JWT_ALGORITHMS=none", "GATEWAY_JWT_COMPANY_CLAIM=a..b", "GATEWAY_JWT_LEEWAY=-1", "GATEWAY_JWKS_URL=ftp://x"},
			wantErrs: []string{"GATEWAY_JWT_SECRET", "GATEWAY_JWT_CACHE_SIZE", "GATEWAY_JWT_ALGORITHMS", "GATEWAY_JWT_COMPANY_CLAIM", "GATEWAY_JWT_LEEWAY", "GATEWAY_JWKS_URL", "GATEWAY_AUTH_MODE"}},
		{name: "RS256 without JWKS", environ: []string{"GATEWAY_AUTH_MODE=jwt", secret, "GATEWAY_JWT_ALGORITHMS=RS256"},
			wantErrs: []string{"RS256 needs GATEWAY_JWKS_URL"}},
		{name: "unknown mode", environ: []string{"GATEWAY_AUTH_MODE=basic"}, wantErrs: []string{"must be none or jwt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(tc.environ)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if msg := tc.check(c); msg != "" {
					t.Fatalf("unexpected config: %s", msg)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
