package routes

// safeSubpath reports whether rest, the raw path after "{prefix}/ingest/",
// can be forwarded: decoded once, with "." and ".." resolved, it must stay
// below its starting point, so the upstream never sees a path outside
// "{prefix}/". What is forwarded keeps the client's encoding; this only
// decides whether to forward it.
//
// It refuses what proxies in front of path-routing services are attacked
// with: dot segments that climb out ("..", "%2e%2e"), encoded separators
// ("%2F", "%5C"), which a later decoding turns into real ones, their
// double-encoded forms ("%252F", and "%252E" for dots), raw backslashes,
// which some servers treat as "/", malformed escapes, and control bytes.
func safeSubpath(rest []byte) bool {
	depth := 0
	for len(rest) > 0 {
		var seg []byte
		seg, rest = cutSegment(rest)
		dots, ok := decodedDots(seg)
		if !ok {
			return false
		}
		switch {
		case len(seg) == 0 || dots == 1:
			// "a//b" and "a/./b" stay where they are.
		case dots == 2:
			depth--
			if depth < 0 {
				return false
			}
		default:
			depth++
		}
	}
	return true
}

func cutSegment(p []byte) (seg, rest []byte) {
	for i, b := range p {
		if b == '/' {
			return p[:i], p[i+1:]
		}
	}
	return p, nil
}

// decodedDots decodes seg once and checks it. It returns 1 or 2 when the
// segment is "." or "..", 0 for any other, and ok=false when the segment
// must be refused.
func decodedDots(seg []byte) (dots int, ok bool) {
	n := 0 // decoded length
	onlyDots := true
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' {
			if i+2 >= len(seg) {
				return 0, false // "%" without two hex digits
			}
			hi, lo := unhex(seg[i+1]), unhex(seg[i+2])
			if hi < 0 || lo < 0 {
				return 0, false
			}
			c = byte(hi<<4 | lo)
			if c == '%' && i+4 < len(seg) && isEncodedSeparatorOrDot(seg[i+3], seg[i+4]) {
				return 0, false // double-encoded "/", "\" or "."
			}
			i += 2
		}
		if c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
			return 0, false
		}
		if c != '.' {
			onlyDots = false
		}
		n++
	}
	if onlyDots && (n == 1 || n == 2) {
		return n, true
	}
	return 0, true
}

// isEncodedSeparatorOrDot reports whether the two hex digits after a
// decoded "%" spell 2E, 2F or 5C in any case.
func isEncodedSeparatorOrDot(a, b byte) bool {
	b |= 0x20
	return (a == '2' && (b == 'e' || b == 'f')) || (a == '5' && b == 'c')
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
