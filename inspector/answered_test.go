package inspector_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/inspector"
)

// A capture keeps the status its bin answered with: the configured one at the time (a later
// change does not rewrite it), 413 for a body that was too large.
func TestCaptureKeepsTheStatusTheBinAnswered(t *testing.T) {
	e := newEnv(t, envOptions{})
	bin := e.createBin(nil)
	if status, _ := e.send("POST", bin.URL, nil, []byte(`{}`)); status != http.StatusOK {
		t.Fatalf("default answer %d", status)
	}
	e.must(http.StatusOK, "PATCH", "/api/v1/inspector/bins/"+bin.ID, map[string]any{"response": map[string]any{"status": 503}}, nil)
	if status, _ := e.send("POST", bin.URL, nil, []byte(`{}`)); status != http.StatusServiceUnavailable {
		t.Fatalf("configured answer %d", status)
	}
	if status, _ := e.send("POST", bin.URL, nil, bytes.Repeat([]byte("a"), inspector.MaxBodyBytes+1)); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized answer %d", status)
	}
	list := e.summaries(bin.ID) // newest first
	var got []int
	for _, s := range list {
		if s.Answered == nil {
			t.Fatalf("capture %s has no answer status", s.ID)
		}
		got = append(got, *s.Answered)
	}
	if want := []int{413, 503, 200}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("answered %v, want %v", got, want)
	}
	if c := e.whole(bin.ID, list[1].ID); c.Answered == nil || *c.Answered != 503 {
		t.Errorf("the whole capture answered %v, want 503", c.Answered)
	}
}
