package api

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/inspector"
)

// The decoder holds delay_ms to its maximum tag, which must be the delay the inspector keeps.
func TestBinResponseDelayBoundIsTheInspectorsLimit(t *testing.T) {
	f, _ := reflect.TypeFor[BinResponseInput]().FieldByName("DelayMS")
	if got, want := f.Tag.Get("maximum"), strconv.Itoa(int(inspector.MaxResponseDelay/time.Millisecond)); got != want {
		t.Errorf("BinResponseInput.DelayMS has maximum %q, but inspector.MaxResponseDelay is %s ms", got, want)
	}
}
