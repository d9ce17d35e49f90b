package app

import (
	"context"
	"log/slog"

	"github.com/atenex/gateway/auth"
	"github.com/atenex/gateway/config"
	"github.com/atenex/gateway/metrics"
)

// newVerifier builds the token verifier for GATEWAY_AUTH_MODE=jwt (nil
// otherwise) and the function that stops its JWKS refreshes. cfg comes
// from config.Load, which has checked that the algorithms and keys agree,
// so auth.New cannot fail on it: if it does, that is a bug, and it panics.
func newVerifier(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*auth.Verifier, context.CancelFunc) {
	if cfg.AuthMode != "jwt" {
		return nil, func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	v, err := auth.New(ctx, auth.Config{
		Secret:       []byte(cfg.JWTSecret),
		JWKSURL:      cfg.JWKSURL,
		Algorithms:   cfg.Algorithms(),
		Issuer:       cfg.JWTIssuer,
		Audience:     cfg.JWTAudience,
		Leeway:       cfg.JWTLeeway,
		CompanyClaim: cfg.JWTCompanyClaim,
		UserClaim:    cfg.JWTUserClaim,
		EmailClaim:   cfg.JWTEmailClaim,
		JWKSRefresh:  cfg.JWKSRefresh,
		CacheSize:    cfg.JWTCacheSize,
		OnFetch: func(err error) {
			if err != nil {
				m.JWKSFetches.WithLabelValues("error").Inc()
				log.Warn("JWKS fetch failed; cached keys stay in use", slog.String("url", cfg.JWKSURL), slog.String("error", err.Error()))
				return
			}
			m.JWKSFetches.WithLabelValues("ok").Inc()
		},
	})
	if err != nil {
		cancel()
		panic("auth settings passed config.Load but not auth.New: " + err.Error())
	}
	return v, cancel
}
