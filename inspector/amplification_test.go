package inspector_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/internal/testsrv"
	"github.com/hookrelay/hookrelay/internal/wait"
)

// A stranger who fills a bin with the bodies that cost most to show (1 MiB of "<", which JSON
// writes as six bytes each) cannot make the server build gigabyte answers: 200 such captures
// are streamed live and listed while the server's resident memory grows by less than 64 MB,
// every live message and the listed page stay small, and each capture is still read whole.
func TestWorstCaseCapturesAreListedAndStreamedInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB through the receiver")
	}
	p := testsrv.StartBinary(t, testsrv.BuildBinary(t), "--db", t.TempDir()+"/h.db", "--inspector-rate", "0")
	var bin api.Bin
	p.Do(t, http.MethodPost, "/api/v1/inspector/bins", map[string]any{"name": "hostile"}, http.StatusCreated, &bin)

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.Addr+"/api/v1/inspector/bins/"+bin.ID+"/ws",
		http.Header{"Authorization": {"Bearer " + testsrv.AdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var messages, biggest atomic.Int64
	var settled atomic.Bool
	go func() {
		for {
			_, raw, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if bytes.Contains(raw, []byte("probes-end")) {
				settled.Store(true)
			}
			messages.Add(1)
			if n := int64(len(raw)); n > biggest.Load() {
				biggest.Store(n)
			}
		}
	}()
	binURL := "http://" + p.Addr + "/inspect/" + bin.ID
	client := &http.Client{Timeout: time.Minute}
	post := func(body []byte) {
		res, err := client.Post(binURL, "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	// Until the socket hears a first small capture, it may not be registered yet.
	wait.Until(t, "the socket hears a first capture", func() bool { post([]byte("hello")); return messages.Load() > 0 })
	// The probes posted before it was registered are never heard; one more, heard last, says
	// the others are in.
	post([]byte("probes-end"))
	wait.Until(t, "the probes are all heard", settled.Load)
	// The same traffic with a body JSON writes as is ("x") first: it fills what any 200 MiB
	// of captures fill (SQLite's page cache, the heap's working size), so the growth measured
	// after it is what hostile bodies cost beyond ordinary ones.
	start, heard := p.RSS(t), messages.Load()
	for range 200 {
		post(bytes.Repeat([]byte("x"), inspector.MaxBodyBytes))
	}
	wait.Until(t, "the plain captures are streamed", func() bool { return messages.Load() == heard+200 })
	probes := messages.Load()
	before := p.RSS(t)
	t.Logf("200 plain 1 MiB captures grew RSS by %.1f MB (page cache and heap warming up)", float64(before-start)/1e6)

	body := bytes.Repeat([]byte("<"), inspector.MaxBodyBytes)
	for range 200 {
		post(body)
	}
	wait.Until(t, "all 200 captures are streamed", func() bool { return messages.Load() == probes+200 })

	raw := p.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+bin.ID+"/requests?limit=200", nil, http.StatusOK, nil)
	var page api.List[inspector.CaptureSummary]
	if err := json.Unmarshal(raw, &page); err != nil || len(page.Data) != 200 {
		t.Fatalf("listed %d captures (%v)", len(page.Data), err)
	}
	grown := p.RSS(t) - before
	t.Logf("RSS grew by %.1f MB; page of 200 is %.1f KB; largest live message %d bytes",
		float64(grown)/1e6, float64(len(raw))/1e3, biggest.Load())
	if grown >= 64<<20 {
		t.Errorf("RSS grew by %d MB, want less than 64", grown>>20)
	}
	if len(raw) > 4<<20 {
		t.Errorf("a page of 200 summaries is %d bytes, want a few MB at most", len(raw))
	}
	if b := biggest.Load(); b > 16<<10 {
		t.Errorf("a live message is %d bytes, want a summary of a few KB", b)
	}
	for _, s := range page.Data {
		if !s.Truncated || s.Size != inspector.MaxBodyBytes || len(s.BodyPreview) != inspector.PreviewBytes {
			t.Fatalf("summary %+v: want a truncated 1 KiB preview of a 1 MiB body", s.ID)
		}
	}
	var whole inspector.Capture
	p.Do(t, http.MethodGet, "/api/v1/inspector/bins/"+bin.ID+"/requests/"+page.Data[0].ID, nil, http.StatusOK, &whole)
	if whole.Body != strings.Repeat("<", inspector.MaxBodyBytes) {
		t.Errorf("the capture read alone has a body of %d bytes, want the whole 1 MiB", len(whole.Body))
	}
}
