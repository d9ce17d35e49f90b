package clientip_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/atenex/gateway/clientip"
)

func resolver(t testing.TB, cidrs string) *clientip.Resolver {
	t.Helper()
	p, err := clientip.ParsePrefixes(cidrs)
	if err != nil {
		t.Fatalf("ParsePrefixes(%q): %v", cidrs, err)
	}
	return clientip.New(p)
}

func TestResolve(t *testing.T) {
	ingress := netip.MustParseAddr("10.0.0.5")
	outsider := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		name    string
		trusted string
		req     clientip.Request
		want    clientip.Origin
	}{
		{"no trusted proxies: peer, headers replaced", "",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "1.2.3.4", ForwardedProto: "https", ForwardedHost: "evil"},
			clientip.Origin{Client: "10.0.0.5", ForwardedFor: "10.0.0.5", Proto: "http", Host: "gw"}},
		{"untrusted peer spoofing", "10.0.0.0/8",
			clientip.Request{Peer: outsider, Host: "gw", ForwardedFor: "10.1.1.1", ForwardedProto: "https", ForwardedHost: "evil"},
			clientip.Origin{Client: "203.0.113.9", ForwardedFor: "203.0.113.9", Proto: "http", Host: "gw"}},
		{"one trusted hop", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "198.51.100.7", ForwardedProto: "https", ForwardedHost: "app.example.com"},
			clientip.Origin{Client: "198.51.100.7", ForwardedFor: "198.51.100.7, 10.0.0.5", Proto: "https", Host: "app.example.com"}},
		{"client-spoofed left entry ignored", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "1.1.1.1, 198.51.100.7"},
			clientip.Origin{Client: "198.51.100.7", ForwardedFor: "1.1.1.1, 198.51.100.7, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"many trusted hops", "10.0.0.0/8, 192.168.0.0/16",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "198.51.100.7, 192.168.1.1, 10.9.9.9"},
			clientip.Origin{Client: "198.51.100.7", ForwardedFor: "198.51.100.7, 192.168.1.1, 10.9.9.9, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"all trusted: left-most", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "10.2.2.2, 10.3.3.3"},
			clientip.Origin{Client: "10.2.2.2", ForwardedFor: "10.2.2.2, 10.3.3.3, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"malformed entry stops the walk", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "198.51.100.7, garbage, 10.3.3.3"},
			clientip.Origin{Client: "10.3.3.3", ForwardedFor: "198.51.100.7, garbage, 10.3.3.3, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"malformed right-most: peer", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedFor: "not-an-ip"},
			clientip.Origin{Client: "10.0.0.5", ForwardedFor: "not-an-ip, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"empty chain from trusted peer", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw"},
			clientip.Origin{Client: "10.0.0.5", ForwardedFor: "10.0.0.5", Proto: "http", Host: "gw"}},
		{"IPv6 with brackets and port", "fd00::/8",
			clientip.Request{Peer: netip.MustParseAddr("fd00::1"), Host: "gw", ForwardedFor: "[2001:db8::7]:4711, [fd00::2]"},
			clientip.Origin{Client: "2001:db8::7", ForwardedFor: "[2001:db8::7]:4711, [fd00::2], fd00::1", Proto: "http", Host: "gw"}},
		{"IPv4-mapped peer", "10.0.0.0/8",
			clientip.Request{Peer: netip.MustParseAddr("::ffff:10.0.0.5"), Host: "gw", ForwardedFor: "198.51.100.7:1234"},
			clientip.Origin{Client: "198.51.100.7", ForwardedFor: "198.51.100.7:1234, 10.0.0.5", Proto: "http", Host: "gw"}},
		{"bad proto and host ignored", "10.0.0.0/8",
			clientip.Request{Peer: ingress, TLS: true, Host: "gw", ForwardedProto: "gopher", ForwardedHost: "a b"},
			clientip.Origin{Client: "10.0.0.5", ForwardedFor: "10.0.0.5", Proto: "https", Host: "gw"}},
		{"proto and host lists: right-most", "10.0.0.0/8",
			clientip.Request{Peer: ingress, Host: "gw", ForwardedProto: "http, HTTPS", ForwardedHost: "x.example, app.example.com:8443"},
			clientip.Origin{Client: "10.0.0.5", ForwardedFor: "10.0.0.5", Proto: "https", Host: "app.example.com:8443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolver(t, tt.trusted).Resolve(tt.req)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveBoundsHops(t *testing.T) {
	chain := strings.Repeat("10.1.1.1, ", 10000) + "10.1.1.1"
	got := resolver(t, "10.0.0.0/8").Resolve(clientip.Request{Peer: netip.MustParseAddr("10.0.0.5"), ForwardedFor: "198.51.100.7, " + chain})
	if got.Client != "10.1.1.1" {
		t.Errorf("got client %q past the hop bound, want a trusted hop 10.1.1.1", got.Client)
	}
}

func TestParsePrefixes(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "nonsense", "10.0.0.1/8/8"} {
		if _, err := clientip.ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q): got no error, want one", bad)
		}
	}
	p, err := clientip.ParsePrefixes(" 10.0.0.0/8 , 192.0.2.1, fd00::/8 ")
	if err != nil || len(p) != 3 {
		t.Fatalf("got %v, %v; want 3 prefixes", p, err)
	}
	if !clientip.New(p).Trusts(netip.MustParseAddr("192.0.2.1")) || clientip.New(p).Trusts(netip.MustParseAddr("192.0.2.2")) {
		t.Errorf("a bare address must trust itself alone")
	}
}

// FuzzResolve checks that whatever a peer sends, the client is an address
// (never header text), an untrusted peer is always its own client, and the
// proto is one of the two.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.1.1.1, 10.0.0.1", "[::1]:80, garbage", ",,,", "fe80::1%eth0", strings.Repeat("10.0.0.1,", 100)} {
		f.Add(s, "https", "h.example", true)
	}
	r := resolver(f, "10.0.0.0/8, fd00::/8")
	f.Fuzz(func(t *testing.T, xff, proto, host string, trustedPeer bool) {
		peer := netip.MustParseAddr("203.0.113.1")
		if trustedPeer {
			peer = netip.MustParseAddr("10.0.0.5")
		}
		o := r.Resolve(clientip.Request{Peer: peer, Host: "gw", ForwardedFor: xff, ForwardedProto: proto, ForwardedHost: host})
		if _, err := netip.ParseAddr(o.Client); err != nil {
			t.Fatalf("client %q is not an address", o.Client)
		}
		if !trustedPeer && (o.Client != "203.0.113.1" || o.ForwardedFor != "203.0.113.1" || o.Host != "gw") {
			t.Fatalf("untrusted peer: got %+v, want the peer alone", o)
		}
		if o.Proto != "http" && o.Proto != "https" {
			t.Fatalf("proto %q", o.Proto)
		}
		if !strings.HasSuffix(o.ForwardedFor, peer.String()) {
			t.Fatalf("chain %q does not end with the peer", o.ForwardedFor)
		}
	})
}
