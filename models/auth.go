package models

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// APIKey is an API token; only its SHA-256 is stored (tokens are 256-bit random, so a plain
// hash cannot be brute-forced), with a short prefix to recognise it in lists.
type APIKey struct {
	ID         string `gorm:"primaryKey"`
	Name       string
	Prefix     string
	Hash       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Session is a browser login: the cookie carries a random session token, the table only
// its hash, so a database leak does not hand out live sessions.
type Session struct {
	ID        string `gorm:"primaryKey"`
	Hash      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Setting is a key/value row for process-wide state such as the admin token's hash.
type Setting struct {
	Key   string `gorm:"primaryKey"`
	Value string
}

// HashToken returns the hex SHA-256 of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewToken returns a fresh API token.
func NewToken() string { return "hr_" + RandomToken(32) }

// CreateAPIKey stores a new key and returns it with the token, shown only this once.
func (s *Store) CreateAPIKey(ctx context.Context, name string) (*APIKey, string, error) {
	token := NewToken()
	k := &APIKey{ID: NewID("key"), Name: name, Prefix: token[:10], Hash: HashToken(token), CreatedAt: time.Now().UTC()}
	if err := s.W.WithContext(ctx).Create(k).Error; err != nil {
		return nil, "", fmt.Errorf("create api key: %w", err)
	}
	return k, token, nil
}

// ListAPIKeys returns every key, newest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*APIKey, error) {
	var list []*APIKey
	if err := s.R.WithContext(ctx).Order("id DESC").Find(&list).Error; err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return list, nil
}

// DeleteAPIKey revokes a key.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	res := s.W.WithContext(ctx).Exec(`DELETE FROM api_keys WHERE id = ?`, id)
	if res.Error != nil {
		return fmt.Errorf("delete api key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// FindAPIKey looks a token up by its hash and confirms it in constant time.
func (s *Store) FindAPIKey(ctx context.Context, token string) (*APIKey, error) {
	h := HashToken(token)
	var k APIKey
	err := s.R.WithContext(ctx).Where("hash = ?", h).Take(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find api key: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return nil, ErrNotFound
	}
	return &k, nil
}

// TouchAPIKey records that a key was used (best effort, at most once a minute per key).
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.W.WithContext(ctx).Exec(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`, at.UTC(), id).Error
}

// CreateSession stores a browser session and returns its cookie value.
func (s *Store) CreateSession(ctx context.Context, ttl time.Duration) (string, *Session, error) {
	token := RandomToken(32)
	now := time.Now().UTC()
	ss := &Session{ID: NewID("ses"), Hash: HashToken(token), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.W.WithContext(ctx).Create(ss).Error; err != nil {
		return "", nil, fmt.Errorf("create session: %w", err)
	}
	return token, ss, nil
}

// FindSession returns the live session for a cookie value.
func (s *Store) FindSession(ctx context.Context, token string) (*Session, error) {
	var ss Session
	err := s.R.WithContext(ctx).Where("hash = ? AND expires_at > ?", HashToken(token), time.Now().UTC()).Take(&ss).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find session: %w", err)
	}
	return &ss, nil
}

// DeleteSession logs a cookie value out.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	return s.W.WithContext(ctx).Exec(`DELETE FROM sessions WHERE hash = ?`, HashToken(token)).Error
}

// GetSetting reads a setting; ErrNotFound when unset.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var st Setting
	err := s.R.WithContext(ctx).Where("key = ?", key).Take(&st).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return st.Value, nil
}

// SetSettingIfAbsent stores a setting unless one exists (so replicas starting together agree)
// and returns the value in force.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	err := s.W.WithContext(ctx).Exec(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value).Error
	if err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	var st Setting
	if err := s.W.WithContext(ctx).Where("key = ?", key).Take(&st).Error; err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return st.Value, nil
}

// Prune deletes events, deliveries and attempts older than the cutoff, except deliveries
// still pending and their events.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		steps := []string{
			`DELETE FROM attempts WHERE started_at < ? AND delivery_id NOT IN (SELECT id FROM deliveries WHERE status = 'pending')`,
			`DELETE FROM deliveries WHERE created_at < ? AND status <> 'pending'`,
			`DELETE FROM events WHERE created_at < ? AND id NOT IN (SELECT event_id FROM deliveries)`,
			`DELETE FROM sessions WHERE expires_at < ?`,
		}
		for _, q := range steps {
			res := tx.Exec(q, before.UTC())
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

// StaleFailingWebhooks returns enabled webhooks whose failures began before cutoff with no
// success since (candidates for auto-disable).
func (s *Store) StaleFailingWebhooks(ctx context.Context, cutoff time.Time) ([]*Webhook, error) {
	var list []*Webhook
	err := s.R.WithContext(ctx).Where("enabled = ? AND failing_since IS NOT NULL AND failing_since < ?", true, cutoff.UTC()).Find(&list).Error
	if err != nil {
		return nil, fmt.Errorf("failing webhooks: %w", err)
	}
	return list, nil
}
