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

// decodedDots checks a segment and says whether it is a dot segment: 1
// for ".", 2 for "..", 0 for any other. ok is false when the segment must
// be refused: a malformed escape, or a separator or control byte once
// decoded, or, decoded a second time (as a careless upstream might), a
// separator or a dot segment that the first decoding did not show.
func decodedDots(seg []byte) (dots int, ok bool) {
	var b1, b2 [128]byte
	once, ok := unescape(b1[:0], seg, true)
	if !ok {
		return 0, false
	}
	twice, _ := unescape(b2[:0], once, false)
	for _, s := range [2][]byte{once, twice} {
		for _, c := range s {
			if c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
				return 0, false
			}
		}
	}
	d := dotSegment(once)
	if dotSegment(twice) != d {
		return 0, false // a dot segment in disguise: "%252e%252e"
	}
	return d, true
}

// unescape appends s to dst with its %XX escapes decoded. Strict, a "%"
// without two hex digits fails; lenient, it is kept as it is.
func unescape(dst, s []byte, strict bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
				c = byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
				i += 2
			} else if strict {
				return dst, false
			}
		}
		dst = append(dst, c)
	}
	return dst, true
}

func dotSegment(s []byte) int {
	switch string(s) {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
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
