package models

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/google/uuid"
)

// NewID returns prefix + "_" + a UUIDv7 in hex. v7 ids sort by creation time, so the
// primary key doubles as the cursor for newest-first pagination, and they never contain a
// dot, so an event id is a valid Standard Webhooks message id.
func NewID(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return prefix + "_" + hex.EncodeToString(u[:])
}

// RandomToken returns n random bytes, hex-encoded, for unguessable identifiers.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
