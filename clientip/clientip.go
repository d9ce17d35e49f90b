// Package clientip works out who a request really comes from when the
// gateway sits behind proxies it trusts, such as the cluster's ingress
// controller. It knows nothing of HTTP servers: it takes the peer's address
// and the X-Forwarded-* values, and returns what the access log, the limits
// and the upstream headers should use.
package clientip

import (
	"net/netip"
	"strings"
)

// Resolver decides from a list of trusted networks. The zero value, or one
// built from no networks, trusts nobody: the peer is the client, as when
// the gateway is the edge.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver trusting the peers in trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// ParsePrefixes reads a comma-separated list of CIDRs ("10.0.0.0/8,
// fd00::/8"); a bare address stands for itself alone.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Enabled reports whether any peer is trusted.
func (r *Resolver) Enabled() bool { return r != nil && len(r.trusted) > 0 }

// Trusts reports whether a is in a trusted network.
func (r *Resolver) Trusts(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = plain(a)
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Request is what a request says about its origin.
type Request struct {
	// Peer is the address of the connection's other end.
	Peer netip.Addr
	// TLS says the connection to the gateway is encrypted.
	TLS bool
	// Host is the request's own Host header.
	Host string
	// ForwardedFor, ForwardedProto and ForwardedHost are the request's
	// X-Forwarded-For (every line joined with ", "), X-Forwarded-Proto and
	// X-Forwarded-Host, believed only from a trusted peer.
	ForwardedFor, ForwardedProto, ForwardedHost string
}

// Origin is the request's origin as the gateway passes it on.
type Origin struct {
	// Client is the client's address: the peer, or behind trusted
	// proxies the right-most untrusted address they forwarded.
	Client string
	// ForwardedFor is the X-Forwarded-For to send upstream: the trusted
	// chain extended with the peer, or the peer alone.
	ForwardedFor string
	// Proto ("http" or "https") and Host are for X-Forwarded-Proto/-Host.
	Proto, Host string
}

// maxHops bounds how many X-Forwarded-For entries are examined, right to
// left: a client may send thousands, and only the right-most, added by the
// proxies, can be vouched for anyway.
const maxHops = 32

// Resolve returns the request's origin. An untrusted peer's X-Forwarded-*
// are ignored and replaced. A trusted peer's chain is read from the right,
// skipping trusted hops: the first untrusted address is the client. The
// walk stops at a malformed entry, taking the last hop vouched for (the
// address to its right, or the peer), because nothing to its left can be:
// that is how a spoofed entry from the client stays harmless.
func (r *Resolver) Resolve(q Request) Origin {
	peer := plain(q.Peer).String()
	o := Origin{Client: peer, ForwardedFor: peer, Proto: "http", Host: q.Host}
	if q.TLS {
		o.Proto = "https"
	}
	if !r.Trusts(q.Peer) {
		return o
	}
	if strings.TrimSpace(q.ForwardedFor) != "" {
		o.ForwardedFor = q.ForwardedFor + ", " + peer
	}
	rest := q.ForwardedFor
	for hops := 0; hops < maxHops && strings.TrimSpace(rest) != ""; hops++ {
		var entry string
		if i := strings.LastIndexByte(rest, ','); i >= 0 {
			rest, entry = rest[:i], rest[i+1:]
		} else {
			rest, entry = "", rest
		}
		a, ok := parseEntry(strings.TrimSpace(entry))
		if !ok {
			break
		}
		o.Client = a.String()
		if !r.Trusts(a) {
			break
		}
	}
	if p := lastValue(q.ForwardedProto); p == "http" || p == "https" {
		o.Proto = p
	}
	if h := lastValue(q.ForwardedHost); validHost(h) {
		o.Host = h
	}
	return o
}

// plain is a without an IPv4-in-IPv6 mapping or a zone, the form the
// trusted networks and the logs use.
func plain(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// parseEntry reads one X-Forwarded-For entry: an IPv4 or IPv6 address,
// optionally bracketed or with a port, as some proxies append one.
func parseEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return plain(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return plain(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return plain(a), true
		}
	}
	return netip.Addr{}, false
}

// lastValue is the right-most element of a comma list, the one the
// nearest proxy set, trimmed and lower-cased.
func lastValue(s string) string {
	if i := strings.LastIndexByte(s, ','); i >= 0 {
		s = s[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(s))
}

// validHost accepts a host[:port] of the characters a Host header may
// hold (RFC 3986 reg-name, IP literals), nothing else.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.IndexByte("-._~:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}
