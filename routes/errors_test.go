package routes

import (
	"testing"

	"github.com/atenex/gateway/upstream"
)

// TestStatusOf is the one mapping from upstream failures to what the
// client sees: 500 is never among them, it is kept for the gateway's bugs.
func TestStatusOf(t *testing.T) {
	tests := []struct {
		kind   upstream.Kind
		status int
		detail string
	}{
		{upstream.KindRefused, 503, "Upstream service is unavailable."},
		{upstream.KindPoolExhausted, 503, "Upstream service is busy, try again shortly."},
		{upstream.KindTimeout, 504, "Upstream service timed out."},
		{upstream.KindReset, 502, "Upstream service failed to answer properly."},
		{upstream.KindBadResponse, 502, "Upstream service failed to answer properly."},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			status, detail := statusOf(tt.kind)
			if status != tt.status || detail != tt.detail {
				t.Errorf("statusOf(%s): got %d %q, want %d %q", tt.kind, status, detail, tt.status, tt.detail)
			}
		})
	}
}
