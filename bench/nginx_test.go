package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNginxConfig renders nginx.conf.tmpl as the kit does and has nginx
// check it (nginx -t), so a setting nginx refuses fails here rather than in
// every nginx round of a kit run. It needs the nginx binary and skips,
// saying so, without it.
func TestNginxConfig(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed (apt-get install nginx-light): cannot check the configuration")
	}
	conf, err := parseNginxConf()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args, err := writeNginxConf(conf, dir, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxy_request_buffering off;", "proxy_buffering off;", "client_body_buffer_size 64k;", "proxy_buffer_size 64k;"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the configuration lacks %q", want)
		}
	}
	out, err := exec.CommandContext(t.Context(), bin, append([]string{"-t"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
