package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// TestNginxConfig renders nginx.conf.tmpl and has nginx check it (nginx -t),
// so a setting nginx refuses fails here rather than in every nginx round of
// a kit run. It needs the nginx binary and skips, saying so, without it.
func TestNginxConfig(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed (apt-get install nginx-light): cannot check the configuration")
	}
	conf := template.Must(template.New("nginx.conf").Option("missingkey=error").Parse(nginxConfText))
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	var b strings.Builder
	if err := conf.Execute(&b, nginxConf{Dir: dir, Port: 1, UpstreamPort: 2, AsRoot: os.Geteuid() == 0}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxy_request_buffering off;", "proxy_buffering off;", "client_body_buffer_size 64k;", "proxy_buffer_size 64k;"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the configuration lacks %q", want)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, "-t", "-p", dir+"/", "-c", path, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
