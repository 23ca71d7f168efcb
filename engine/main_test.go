package engine_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test here starts real servers, dispatchers, receivers and processes; none may leave
// a goroutine behind once its cleanups ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// GORM's prepared-statement cache starts an expiry goroutine that it never stops, by
		// design until its v2 (gorm.io/gorm/internal/lru: "done channel is never closed").
		goleak.IgnoreTopFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1"),
	)
}

const plainSecret = "your-webhook-secret" // the seed's own example secret

// conversation is the data of the conversation.started events the tests publish.
var conversation = map[string]any{"conversation_id": 123, "visitor_name": "John Doe"}
