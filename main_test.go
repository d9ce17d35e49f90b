package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/atenex/gateway/auth"
)

// TestTokenCommand mints a token with the configured secret and claim
// path, and checks the gateway's own verifier accepts it for that company.
func TestTokenCommand(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	env := []string{"GATEWAY_JWT_SECRET=" + secret, "GATEWAY_JWT_COMPANY_CLAIM=app_metadata.company_id"}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-env-file", "/nonexistent", "-company", "acme"}, env, &out); err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(context.Background(), auth.Config{Secret: []byte(secret), Algorithms: []string{"HS256"},
		CompanyClaim: "app_metadata.company_id", UserClaim: "sub", EmailClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	id, f := v.Verify(context.Background(), "Bearer "+strings.TrimSpace(out.String()))
	if f != nil || id.CompanyID != "acme" || id.UserID != "dev-user" {
		t.Fatalf("%+v %v", id, f)
	}
	if err := run(context.Background(), []string{"token", "-env-file", "/nonexistent", "-company", "acme"}, nil, &out); err == nil {
		t.Fatal("minted without a secret")
	}
}
