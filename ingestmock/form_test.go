package ingestmock_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/atenex/gateway/ingestmock"
)

// TestFormIsWhatTheUploadRouteTakes: a Form of the length it claims is a
// valid upload, with the file byte-exact.
func TestFormIsWhatTheUploadRouteTakes(t *testing.T) {
	srv := httptest.NewServer(ingestmock.New("/api/v1"))
	defer srv.Close()
	const n = 3<<20 + 7
	form, err := ingestmock.NewForm("a.pdf", "application/pdf", "metadata_json", "{}")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/upload", form.Body(ingestmock.Pattern(n)))
	req.ContentLength = form.Len(n)
	req.Header.Set("Content-Type", form.ContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		FileSize int64  `json:"file_size"`
		FileName string `json:"file_name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || got.FileSize != n || got.FileName != "a.pdf" {
		t.Errorf("got %d %+v, want 202 with a %d-byte a.pdf", resp.StatusCode, got, n)
	}
	if _, err := ingestmock.NewForm("a.pdf", "application/pdf", "odd"); err == nil {
		t.Errorf("NewForm with an unpaired field: got no error")
	}
}
