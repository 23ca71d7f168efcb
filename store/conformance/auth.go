package conformance

import (
	"context"
	"errors"
	"sync"
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

// Logins racing the revocation of their key never leave a session behind: each ends either
// refused or deleted with the key.
func testLoginRacingRevocationLeavesNoSession(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t, b.DSN(t))
	for round := range 30 {
		k, _, err := s.CreateAPIKey(ctx, "racing")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := s.CreateSession(ctx, time.Hour, k.ID); err != nil && !errors.Is(err, models.ErrNotFound) {
					t.Errorf("round %d: login: %v", round, err)
				}
			}()
		}
		if err := s.DeleteAPIKey(ctx, k.ID); err != nil {
			t.Fatalf("round %d: revoke: %v", round, err)
		}
		wg.Wait()
		var left []struct{ ID string }
		if err := s.ScanSQL(ctx, &left, `SELECT id FROM sessions WHERE credential = ?`, k.ID); err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("round %d: %d sessions outlived their revoked key", round, len(left))
		}
	}
}
