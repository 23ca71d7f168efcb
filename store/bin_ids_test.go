package store_test

import (
	"testing"

	"github.com/hookrelay/hookrelay/models"
)

func TestBinIDsIncreaseWithinOneMillisecond(t *testing.T) {
	prev := models.NewBinID()
	for range 1000 {
		id := models.NewBinID()
		if id <= prev {
			t.Fatalf("bin id %s does not sort after %s: list cursors would skip bins", id, prev)
		}
		prev = id
	}
}
