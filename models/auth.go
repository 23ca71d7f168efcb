package models

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
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
// its hash, so a database leak does not hand out live sessions. Credential names what the
// session was opened with (an API key id, or AdminCredential), so that revoking it ends the
// session too.
type Session struct {
	ID         string `gorm:"primaryKey"`
	Hash       string
	Credential string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// AdminCredential is the Session.Credential of a login with the admin token whose SHA-256 is
// adminHash. Only a prefix of the hash is kept: enough to notice that the token changed.
func AdminCredential(adminHash string) string {
	return "admin:" + adminHash[:min(16, len(adminHash))]
}

// HashToken returns the hex SHA-256 of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewToken returns a fresh API token.
func NewToken() string { return "hr_" + RandomToken(32) }
