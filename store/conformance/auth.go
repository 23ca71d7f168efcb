package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
)

func testSessionsEndWithTheirCredential(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	k, _, err := s.CreateAPIKey(ctx, "ui")
	if err != nil {
		t.Fatal(err)
	}
	keyCookie, _, err := s.CreateSession(ctx, time.Hour, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	admin := models.AdminCredential(models.HashToken("admin-token-0123456789"))
	adminCookie, _, err := s.CreateSession(ctx, time.Hour, admin)
	if err != nil {
		t.Fatal(err)
	}
	if ss, err := s.FindSession(ctx, adminCookie); err != nil || ss.Credential != admin {
		t.Fatalf("admin session %+v %v", ss, err)
	}
	if err := s.DeleteAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindSession(ctx, keyCookie); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("session of a revoked key: %v", err)
	}
	if _, err := s.FindSession(ctx, adminCookie); err != nil {
		t.Errorf("unrelated session ended: %v", err)
	}
	if _, _, err := s.CreateSession(ctx, time.Hour, k.ID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("session for a revoked key: %v", err)
	}
	expired, _, err := s.CreateSession(ctx, -time.Second, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindSession(ctx, expired); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("expired session found: %v", err)
	}
}
