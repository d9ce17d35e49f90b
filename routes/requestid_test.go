package routes

import (
	"regexp"
	"testing"
)

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestNewRequestID checks that generated IDs are version 4 UUIDs and do not
// repeat: the access log and the ingest service join on them.
func TestNewRequestID(t *testing.T) {
	seen := make(map[string]bool)
	for range 100_000 {
		id := newRequestID()
		if !uuid4.MatchString(id) {
			t.Fatalf("got %q, want a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q generated twice", id)
		}
		seen[id] = true
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123": true, "": false, "a b": false, "é": false, "a\x7f": false,
		string(make([]byte, maxRequestIDLen+1)): false,
	} {
		if got := validRequestID([]byte(id)); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}
