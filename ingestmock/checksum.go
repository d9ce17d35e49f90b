package ingestmock

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"net/http"
)

// Checksum names accepted by the sink and upload routes' checksum query
// parameter; sha256 is the default. A load test checks every byte it
// moves, and sha256 (about 1.7 GB/s on one core) would make the mock, not
// the proxy under test, the heaviest process in a transfer test. CRC-32C
// runs in hardware at well over 10 GB/s and still catches a dropped,
// duplicated or reordered block of Pattern, which never repeats.
const (
	ChecksumSHA256 = "sha256"
	ChecksumCRC32C = "crc32c"
)

// NewChecksum returns a fresh hash for a checksum name, and false for a
// name the mock does not know. The kit hashes what it sends or receives
// with it, so both ends agree on the algorithm by construction.
func NewChecksum(name string) (hash.Hash, bool) {
	switch name {
	case ChecksumSHA256:
		return sha256.New(), true
	case ChecksumCRC32C:
		return crc32.New(crc32.MakeTable(crc32.Castagnoli)), true
	}
	return nil, false
}

// requestedDigest returns a fresh hash for r's checksum query parameter
// and its name; an absent or empty parameter means sha256. Names are case
// sensitive. For any other name it consumes the body (as the routes always
// do, so a client still sending reads the answer, not a reset), answers 400
// and returns false. The real service ignores query parameters it does not
// know; this one is the mock's own, for tests, which want a typo to fail
// loudly rather than silently fall back to sha256.
func (m *mock) requestedDigest(w http.ResponseWriter, r *http.Request) (hash.Hash, string, bool) {
	name := r.URL.Query().Get("checksum")
	if name == "" {
		name = ChecksumSHA256
	}
	h, ok := NewChecksum(name)
	if !ok {
		drain(r.Body)
		writeJSON(w, http.StatusBadRequest, m.badChecksum)
	}
	return h, name, ok
}

// sums is the checksum part of a reply: exactly one field is set.
type sums struct {
	SHA256 string `json:"sha256,omitempty"`
	CRC32C string `json:"crc32c,omitempty"`
}

// set records h's hex sum under name.
func (s *sums) set(name string, h hash.Hash) {
	sum := hex.EncodeToString(h.Sum(nil))
	switch name {
	case ChecksumSHA256:
		s.SHA256 = sum
	case ChecksumCRC32C:
		s.CRC32C = sum
	}
}
