package routes

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzEndToEnd holds the forwarding rules for any header list: no
// hop-by-hop header and no header named in Connection gets through, and
// every other header gets through once, in order, with its value.
func FuzzEndToEnd(f *testing.F) {
	f.Add("Connection: keep-alive, X-Secret\nX-Secret: 1\nX-A: a\nKeep-Alive: 5\nX-A: b\nTE: trailers")
	f.Add("Upgrade: h2c\nX-Forwarded-For: 1.2.3.4\nContent-Length: 5\nHost: h")
	f.Add("connection: x-a\nx-a: 1\nX-B: 2")
	f.Fuzz(func(t *testing.T, raw string) {
		type kv struct{ k, v string }
		var in []kv
		for _, line := range strings.Split(raw, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && k != "" {
				in = append(in, kv{k, strings.TrimSpace(v)})
			}
		}
		var named []string
		for _, h := range in {
			if strings.EqualFold(h.k, "Connection") {
				for _, tok := range strings.Split(h.v, ",") {
					if tok = strings.TrimSpace(tok); tok != "" {
						named = append(named, strings.ToLower(tok))
					}
				}
			}
		}
		var want, got []kv
		for _, h := range in {
			if !isHopByHop([]byte(h.k)) && !slices.Contains(named[:min(len(named), maxConnectionTokens)], strings.ToLower(h.k)) &&
				!strings.EqualFold(h.k, "Content-Length") {
				want = append(want, h)
			}
		}
		e := endToEnd{replaced: []string{"Content-Length"}}
		for _, h := range in {
			e.note([]byte(h.k), []byte(h.v))
		}
		for _, h := range in {
			if e.keep([]byte(h.k)) {
				got = append(got, h)
			}
		}
		for _, h := range got {
			if isHopByHop([]byte(h.k)) {
				t.Fatalf("hop-by-hop %q forwarded", h.k)
			}
		}
		if !slices.Equal(got, want) && len(named) <= maxConnectionTokens {
			t.Fatalf("forwarded %q, want %q", got, want)
		}
	})
}

// FuzzUpstreamURI holds that the upstream target is the prefix, a slash,
// the client's raw path after the cut and its raw query, byte for byte.
func FuzzUpstreamURI(f *testing.F) {
	f.Add("/api/v1/ingest/upload", "a=1&a=2&b=&c=%41+d")
	f.Add("/api/v1/ingest/a//b/%2e", "")
	f.Fuzz(func(t *testing.T, path, query string) {
		const ingest = "/api/v1/ingest/"
		if !strings.HasPrefix(path, ingest) || strings.ContainsAny(path+query, "?# \r\n\t") || strings.ContainsRune(path+query, 0) {
			return
		}
		var uri fasthttp.URI
		uri.DisablePathNormalizing = true
		target := path
		if query != "" {
			target += "?" + query
		}
		if uri.Parse(nil, []byte(target)) != nil || !bytes.HasPrefix(uri.PathOriginal(), []byte(ingest)) {
			return // the handler never sees it: routing needs the prefix
		}
		got := upstreamURI(nil, "/api/v1", &uri, len(ingest))
		want := "/api/v1/" + strings.TrimPrefix(string(uri.PathOriginal()), ingest)
		if q := uri.QueryString(); len(q) > 0 {
			want += "?" + string(q)
		}
		if string(got) != want {
			t.Fatalf("upstreamURI(%q): got %q, want %q", target, got, want)
		}
		if !bytes.HasPrefix(got, []byte("/api/v1/")) {
			t.Fatalf("upstreamURI(%q) = %q leaves the prefix", target, got)
		}
	})
}

func FuzzTraceID(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, header string) {
		id := traceID([]byte(header))
		if id == "" {
			return
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("traceID(%q) = %q, want 32 lower-case hex digits", header, id)
		}
		if !strings.Contains(header, id) {
			t.Fatalf("traceID(%q) = %q, not from the header", header, id)
		}
	})
}
