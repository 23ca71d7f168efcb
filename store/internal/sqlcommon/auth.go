package sqlcommon

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// CreateAPIKey stores a new key and returns it with the token, shown only this once.
func (s *Base) CreateAPIKey(ctx context.Context, name string) (*models.APIKey, string, error) {
	token := models.NewToken()
	k := &models.APIKey{ID: models.NewID("key"), Name: name, Prefix: token[:10], Hash: models.HashToken(token), CreatedAt: time.Now().UTC()}
	if err := s.Writer.WithContext(ctx).Create(k).Error; err != nil {
		return nil, "", fmt.Errorf("create api key: %w", err)
	}
	return k, token, nil
}

// ListAPIKeys returns one page of keys, newest first.
func (s *Base) ListAPIKeys(ctx context.Context, p models.Page) ([]*models.APIKey, string, error) {
	q := s.Reader.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.APIKey
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(k *models.APIKey) string { return k.ID })
	return list, next, nil
}

// DeleteAPIKey revokes a key and ends the browser sessions opened with it.
func (s *Base) DeleteAPIKey(ctx context.Context, id string) error {
	return s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM api_keys WHERE id = ?`, id)
		if res.Error != nil {
			return fmt.Errorf("delete api key: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return models.ErrNotFound
		}
		if err := tx.Exec(`DELETE FROM sessions WHERE credential = ?`, id).Error; err != nil {
			return fmt.Errorf("delete sessions of api key: %w", err)
		}
		return nil
	})
}

// FindAPIKey looks a token up by its hash and confirms it in constant time.
func (s *Base) FindAPIKey(ctx context.Context, token string) (*models.APIKey, error) {
	h := models.HashToken(token)
	var k models.APIKey
	err := s.Reader.WithContext(ctx).Where("hash = ?", h).Take(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, models.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find api key: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return nil, models.ErrNotFound
	}
	return &k, nil
}

// TouchAPIKey records that a key was used (best effort, at most once a minute per key).
func (s *Base) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.Writer.WithContext(ctx).Exec(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`, at.UTC(), id).Error
}

// CreateSession stores a browser session opened with credential (an API key id or
// AdminCredential) and returns its cookie value. For an API key, the key must still exist
// when the session is written: a revocation racing the login cannot leave a live session.
// The no-op UPDATE is what makes that hold on PostgreSQL, where a plain read would not: it
// locks the key's row, so a DeleteAPIKey either finished first (no row: not found) or waits
// for this session to commit and then deletes it with the key's others. On SQLite the one
// writer already orders the two.
func (s *Base) CreateSession(ctx context.Context, ttl time.Duration, credential string) (string, *models.Session, error) {
	token := models.RandomToken(32)
	now := time.Now().UTC()
	ss := &models.Session{ID: models.NewID("ses"), Hash: models.HashToken(token), Credential: credential, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if !strings.HasPrefix(credential, "admin:") {
			res := tx.Exec(`UPDATE api_keys SET last_used_at = last_used_at WHERE id = ?`, credential)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return models.ErrNotFound
			}
		}
		return tx.Create(ss).Error
	})
	if errors.Is(err, models.ErrNotFound) {
		return "", nil, err
	}
	if err != nil {
		return "", nil, fmt.Errorf("create session: %w", err)
	}
	return token, ss, nil
}

// FindSession returns the live session for a cookie value.
func (s *Base) FindSession(ctx context.Context, token string) (*models.Session, error) {
	var ss models.Session
	err := s.Reader.WithContext(ctx).Where("hash = ? AND expires_at > ?", models.HashToken(token), time.Now().UTC()).Take(&ss).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, models.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	return &ss, nil
}

// DeleteSession logs a cookie value out.
func (s *Base) DeleteSession(ctx context.Context, token string) error {
	return s.Writer.WithContext(ctx).Exec(`DELETE FROM sessions WHERE hash = ?`, models.HashToken(token)).Error
}

// GetSetting reads a setting; ErrNotFound when unset.
func (s *Base) GetSetting(ctx context.Context, key string) (string, error) {
	var st Setting
	err := s.Reader.WithContext(ctx).Where("key = ?", key).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", models.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return st.Value, nil
}

// SetSettingIfAbsent stores a setting unless one exists (so replicas starting together agree)
// and returns the value in force.
func (s *Base) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	err := s.Writer.WithContext(ctx).Exec(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value).Error
	if err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	var st Setting
	if err := s.Writer.WithContext(ctx).Where("key = ?", key).Take(&st).Error; err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return st.Value, nil
}

// Prune deletes events, deliveries, attempts and inspector captures older than the cutoff
// (and expired sessions), except deliveries still pending and their events.
func (s *Base) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Deliveries and events are cut by id: ids are UUIDv7 (or, for a spilled webhook's
		// delivery, start with its event's), ordered by creation time, so the primary key
		// serves the range and no time index has to be kept up to date on every row written.
		// Attempts go with their delivery, through the index they are read by.
		steps := []struct {
			q   string
			arg any
		}{
			{`DELETE FROM attempts WHERE delivery_id < ? AND delivery_id NOT IN (SELECT id FROM deliveries WHERE status = 'pending')`, idBefore("dlv", before)},
			{`DELETE FROM deliveries WHERE id < ? AND status <> 'pending'`, idBefore("dlv", before)},
			{`DELETE FROM events WHERE id < ? AND id NOT IN (SELECT event_id FROM deliveries)` + s.hooks.KeepOwed(), idBefore("evt", before)},
			{`DELETE FROM sessions WHERE expires_at < ?`, before.UTC()},
			{`DELETE FROM captures WHERE received_at < ?`, before.UTC()},
			{`DELETE FROM webhook_activity WHERE hour < ?`, before.Unix() / 3600},
		}
		for _, st := range steps {
			res := tx.Exec(st.q, st.arg)
			if res.Error != nil {
				return res.Error
			}
			total += res.RowsAffected
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	return total, nil
}

// idBefore is the smallest id NewID(prefix) could return at t: every id made earlier sorts
// below it.
func idBefore(prefix string, t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	var b [16]byte
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// StaleFailingWebhooks returns enabled webhooks whose failures began before cutoff with no
// success since (candidates for auto-disable).
func (s *Base) StaleFailingWebhooks(ctx context.Context, cutoff time.Time) ([]*models.Webhook, error) {
	var list []*models.Webhook
	err := s.Reader.WithContext(ctx).Where("enabled = ? AND failing_since IS NOT NULL AND failing_since < ?", true, cutoff.UTC()).Find(&list).Error
	if err != nil {
		return nil, fmt.Errorf("failing webhooks: %w", err)
	}
	return list, nil
}
