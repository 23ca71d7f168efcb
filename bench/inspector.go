package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/signature"
)

// The inspector scenario: senders post signed 1 KiB webhooks to one bin as fast as the
// server takes them (the bench runs Hookrelay without the per-bin rate limit), once with
// nobody watching and once with a browser's WebSocket open on the bin. Every capture is
// stored, verified (signature, timestamp, payload) and, when watched, pushed: the figure is
// captures per second against the loopback ceiling of the same run.

// InspectorResult is the inspector scenario.
type InspectorResult struct {
	Captures    int     `json:"captures"`
	Concurrency int     `json:"concurrency"`
	CeilingRPS  float64 `json:"ceiling_requests_per_sec"`
	// Unwatched and Watched are the two phases: without and with a live WebSocket viewer.
	Unwatched *CapturePhase `json:"unwatched"`
	Watched   *CapturePhase `json:"watched"`
}

// CapturePhase is one phase of the inspector scenario.
type CapturePhase struct {
	PerSec  float64 `json:"captures_per_sec"`
	Ratio   float64 `json:"ratio"` // captures/s ÷ ceiling
	Failed  int     `json:"failed"`
	Stored  int64   `json:"stored"`   // captures the bin holds afterwards (it keeps its newest 500)
	Pushed  int64   `json:"pushed"`   // live messages the viewer received
	Valid   int64   `json:"verified"` // of those, how many carried a valid signature and payload
	Seconds float64 `json:"seconds"`
	// CPUMicros is the CPU time of the bench and the server per capture: steadier than the
	// rate when other work shares the machine.
	CPUMicros float64 `json:"cpu_us_per_capture"`
	// ServerMicros is the Hookrelay process's part of CPUMicros, with -binary (0 in-process);
	// DatabaseMicros is PostgreSQL's CPU per capture, when it runs on this machine (else 0).
	ServerMicros   float64 `json:"server_cpu_us_per_capture,omitempty"`
	DatabaseMicros float64 `json:"database_cpu_us_per_capture,omitempty"`
	// MachineCores is the CPU time every process on the machine used during the phase ÷ its
	// wall time: short of the machine's cores, the captures waited on something other than
	// CPU (a commit's flush, a round trip).
	MachineCores float64 `json:"machine_cores_busy"`
}

// FloodResult is the flood scenario: batch deliveries without and with one bin taking
// captures as fast as it can, each on a fresh database: once with the server's default
// per-bin limit and once with none. The quiet phase runs first and again last, and the
// flooded phases are compared with the mean of the two, as the loopback ceiling is: on a
// machine whose speed drifts by a fifth within minutes, one quiet phase before them made
// the ratio swing as much as the flood did.
type FloodResult struct {
	Quiet      *PhaseResult `json:"quiet"`
	QuietAfter *PhaseResult `json:"quiet_after"`
	// QuietPerSec is the mean of the two quiet phases' deliveries/s.
	QuietPerSec float64 `json:"quiet_per_sec"`
	// Limited ran with --inspector-rate at its default (the bin answers 429 past it).
	Limited   *PhaseResult `json:"limited"`
	Unlimited *PhaseResult `json:"unlimited"`
	// NoYield ran unlimited and with --inspector-busy-rate 0: captures never waited for
	// deliveries. It shows what yielding buys; no target applies.
	NoYield *PhaseResult `json:"no_yield"`
	// LimitedRatio, UnlimitedRatio and NoYieldRatio are deliveries/s flooded ÷ QuietPerSec.
	LimitedRatio   float64 `json:"limited_ratio"`
	UnlimitedRatio float64 `json:"unlimited_ratio"`
	NoYieldRatio   float64 `json:"no_yield_ratio"`
}

// defaultInspectorRate is the binary's --inspector-rate default.
const defaultInspectorRate = 50

func (r *runner) floodScenario(ctx context.Context) (*FloodResult, error) {
	res := &FloodResult{}
	var err error
	if res.Quiet, err = r.throughputPhase(ctx, true, flooded{}); err != nil {
		return res, err
	}
	if res.Limited, err = r.throughputPhase(ctx, true, flooded{on: true, rate: defaultInspectorRate}); err != nil {
		return res, err
	}
	if res.Unlimited, err = r.throughputPhase(ctx, true, flooded{on: true}); err != nil {
		return res, err
	}
	if res.NoYield, err = r.throughputPhase(ctx, true, flooded{on: true, noYield: true}); err != nil {
		return res, err
	}
	if res.QuietAfter, err = r.throughputPhase(ctx, true, flooded{}); err != nil {
		return res, err
	}
	res.QuietPerSec = (res.Quiet.DeliveriesPerSec + res.QuietAfter.DeliveriesPerSec) / 2
	res.LimitedRatio = res.Limited.DeliveriesPerSec / res.QuietPerSec
	res.UnlimitedRatio = res.Unlimited.DeliveriesPerSec / res.QuietPerSec
	res.NoYieldRatio = res.NoYield.DeliveriesPerSec / res.QuietPerSec
	return res, nil
}

// binSecret signs the scenario's captures; the bin verifies with it.
const binSecret = "bench-inspector-secret"

func (r *runner) inspector(ctx context.Context) (*InspectorResult, error) {
	n, conc := r.o.n, r.o.c
	res := &InspectorResult{Captures: n, Concurrency: conc}
	r.logf("inspector: loopback ceiling, %d requests of 1 KiB with concurrency %d", n, conc)
	before, err := ceiling(ctx, n, conc, r.bin != "")
	if err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	for _, watched := range []bool{false, true} {
		p, err := r.capturePhase(ctx, watched)
		if watched {
			res.Watched = p
		} else {
			res.Unwatched = p
		}
		if err != nil {
			return res, err
		}
	}
	after, err := ceiling(ctx, n, conc, r.bin != "")
	if err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	res.CeilingRPS = (before + after) / 2
	for _, p := range []*CapturePhase{res.Unwatched, res.Watched} {
		p.Ratio = p.PerSec / res.CeilingRPS
	}
	return res, nil
}

// capturePhase runs one phase on a fresh database and bin.
func (r *runner) capturePhase(ctx context.Context, watched bool) (*CapturePhase, error) {
	name := "unwatched"
	if watched {
		name = "watched"
	}
	dsn, cleanup, err := r.be.fresh(ctx, "inspector_"+name)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	h, cl, stop, err := r.start(dsn, r.o.deliveryTimeout)
	if err != nil {
		return nil, err
	}
	defer stop()
	binID, err := cl.createBin(ctx)
	if err != nil {
		return nil, err
	}
	p := &CapturePhase{}
	var viewer *binViewer
	if watched {
		if viewer, err = watchBin(ctx, cl, binID); err != nil {
			return nil, err
		}
		defer viewer.close()
	}
	r.logf("inspector (%s): %d signed captures, concurrency %d", name, r.o.n, r.o.c)
	stopProfile, err := r.startProfile("inspector_" + name)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	hc := newHTTPClient(r.o.c)
	defer hc.CloseIdleConnections()
	url := cl.base + "/inspect/" + binID
	ring := signedCaptures(time.Now())
	cpuStart := r.readCPU(h)
	elapsed, failed, firstErr := closedLoop(ctx, r.o.n, r.o.c, func(ctx context.Context, i int) error {
		return postCapture(ctx, hc, url, ring, i)
	})
	stopProfile()
	used, perCapture := r.cpuSince(h, cpuStart, elapsed.Seconds()), elapsed.Seconds()/float64(max(1, r.o.n-failed))*1e6
	p.CPUMicros, p.ServerMicros, p.DatabaseMicros = used.process*perCapture, used.server*perCapture, used.database*perCapture
	p.MachineCores = used.machine
	p.Seconds, p.Failed = elapsed.Seconds(), failed
	p.PerSec = float64(r.o.n-failed) / elapsed.Seconds()
	if failed > 0 {
		r.logf("inspector (%s): %d captures failed, first: %v", name, failed, firstErr)
	}
	if viewer != nil {
		// The last pushes may trail the last answers by a moment.
		want := int64(r.o.n - failed)
		for deadline := time.Now().Add(10 * time.Second); viewer.pushed.Load() < want && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		p.Pushed, p.Valid = viewer.pushed.Load(), viewer.valid.Load()
	}
	if p.Stored, err = cl.countCaptures(ctx, binID); err != nil {
		return p, err
	}
	r.logf("inspector (%s): %.0f captures/s, %d pushed (%d verified), %d stored", name, p.PerSec, p.Pushed, p.Valid, p.Stored)
	return p, nil
}

// signedCapture is a webhook ready to post to a bin: a message.received payload of about
// 1 KiB and the seed's headers, signed as Hookrelay signs them.
type signedCapture struct {
	body    []byte
	headers [][2]string
}

// captureRing is how many distinct webhooks the senders of a phase post, in turn.
const captureRing = 256

// signedCaptures builds captureRing webhooks timestamped now, before a phase's clock starts.
// The ceiling's client posts one body built once; building and signing every webhook as it
// is posted (about 4% of the bench's CPU in the inspector scenario) counted a sender's own
// work against the captures, work a real sender does on its own machine. Bins verify the
// timestamp's skew only to report it, so a phase of any length posts them as they are.
func signedCaptures(now time.Time) []signedCapture {
	ts := models.FormatTimestamp(now)
	out := make([]signedCapture, captureRing)
	for i := range out {
		body := capturePayload(i, now)
		out[i] = signedCapture{body: body, headers: [][2]string{
			{"X-Webhook-Event", "message.received"},
			{"X-Webhook-Timestamp", ts},
			{"X-Webhook-Signature", signature.HexHMAC(binSecret, body)},
		}}
	}
	return out
}

// postCapture posts the i-th webhook of the ring.
func postCapture(ctx context.Context, hc *http.Client, url string, ring []signedCapture, i int) error {
	sc := ring[i%len(ring)]
	return postOK(ctx, hc, url, sc.body, func(h http.Header) {
		for _, kv := range sc.headers {
			h[kv[0]] = []string{kv[1]}
		}
	})
}

// capturePayload is a delivered message.received payload, every field in the order
// Hookrelay writes them, with content padded to make the body about 1 KiB.
func capturePayload(i int, now time.Time) []byte {
	ts := models.FormatTimestamp(now)
	b := make([]byte, 0, 1100)
	b = append(b, `{"event":"message.received","timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `","data":{"message_id":`...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	b = append(b, `,"content":"bench `...)
	b = append(b, padding...)
	b = append(b, `","is_from_admin":false,"admin_name":null,"conversation_id":`...)
	b = strconv.AppendInt(b, int64(i%100000+1), 10)
	b = append(b, `,"visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",`+
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open","created_at":"`...)
	b = append(b, ts...)
	return append(b, `"}}`...)
}

// createBin creates a bin that verifies with binSecret and returns its id.
func (c *client) createBin(ctx context.Context) (string, error) {
	status, body, err := c.post(ctx, "/api/v1/inspector/bins", []byte(`{"name":"bench","secret":"`+binSecret+`"}`))
	if err != nil {
		return "", fmt.Errorf("create bin: %w", err)
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("create bin: HTTP %d: %s", status, body)
	}
	var b struct{ ID string }
	if err := json.Unmarshal(body, &b); err != nil || b.ID == "" {
		return "", fmt.Errorf("create bin: answer %s", body)
	}
	return b.ID, nil
}

// countCaptures counts the captures a bin holds by paging through them.
func (c *client) countCaptures(ctx context.Context, binID string) (int64, error) {
	var n int64
	cursor := ""
	for {
		var page struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := c.getJSON(ctx, "/api/v1/inspector/bins/"+binID+"/requests?limit=200&cursor="+cursor, &page); err != nil {
			return 0, fmt.Errorf("list captures: %w", err)
		}
		n += int64(len(page.Data))
		if page.NextCursor == "" {
			return n, nil
		}
		cursor = page.NextCursor
	}
}

// binViewer is a browser's WebSocket on a bin: it counts the captures pushed to it.
type binViewer struct {
	conn   *websocket.Conn
	pushed atomic.Int64
	valid  atomic.Int64
	done   chan struct{}
}

func watchBin(ctx context.Context, cl *client, binID string) (*binViewer, error) {
	u := "ws" + strings.TrimPrefix(cl.base, "http") + "/api/v1/inspector/bins/" + binID + "/ws"
	h := http.Header{"Authorization": {"Bearer " + cl.token}, "Origin": {cl.base}}
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("watch bin: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("watch bin: %w", err)
	}
	v := &binViewer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		// One buffer for every message: ReadMessage grows a new one from 512 bytes for each,
		// which cost the bench's own viewer more than the server's push of the same message.
		var buf bytes.Buffer
		for {
			_, r, err := conn.NextReader()
			if err != nil {
				return
			}
			buf.Reset()
			if _, err := buf.ReadFrom(r); err != nil {
				return
			}
			verdicts, ok := pushedVerdicts(buf.Bytes())
			if !ok {
				continue
			}
			v.pushed.Add(1)
			if verdicts.verified() {
				v.valid.Add(1)
			}
		}
	}()
	return v, nil
}

// pushedVerdicts reads a capture's verdicts from its live message; ok is false for any other
// message. The viewer stands in for a browser, which would run on another machine: decoding
// each message with encoding/json, a kilobyte of escaped body preview, cost this process a
// tenth of its CPU in the watched phase, more than the server's push of it, and the verdicts
// object alone still cost it 5 to 8 µs a capture. So it reads the three values it checks
// after their keys, in the order the inspector writes them: inside a JSON string every quote
// is escaped, so a quoted key found in the message is a key, not text in the body. The
// message as a whole is the inspector's tests' to check, not the bench's.
func pushedVerdicts(msg []byte) (v captureVerdicts, ok bool) {
	if !bytes.HasPrefix(msg, []byte(`{"type":"request",`)) {
		return v, false
	}
	// A capture whose verdicts do not read as expected is counted, and not verified.
	_, rest, found := bytes.Cut(msg, []byte(`,"verdicts":{"signature":"`))
	if !found {
		return v, true
	}
	sig, rest, found := bytes.Cut(rest, []byte(`"`))
	if !found {
		return v, true
	}
	if _, rest, found = bytes.Cut(rest, []byte(`,"timestamp_skew_seconds":`)); !found {
		return v, true
	}
	skew, rest, found := bytes.Cut(rest, []byte(","))
	if !found {
		return v, true
	}
	if _, rest, found = bytes.Cut(rest, []byte(`"payload":{"status":"`)); !found {
		return v, true
	}
	status, _, found := bytes.Cut(rest, []byte(`"`))
	if !found {
		return v, true
	}
	v.Signature, v.Payload.Status = string(sig), string(status)
	if n, err := strconv.ParseInt(string(skew), 10, 64); err == nil {
		v.Skew = &n
	}
	return v, true
}

// captureVerdicts is the part of a capture's verdicts the bench checks.
type captureVerdicts struct {
	Signature string
	Skew      *int64 // nil when the inspector could not read the capture's X-Webhook-Timestamp
	Payload   struct{ Status string }
}

// verified says the inspector found the capture's signature valid, read its timestamp and
// found its payload one Hookrelay sends.
func (v captureVerdicts) verified() bool {
	return v.Signature == "valid" && v.Skew != nil && v.Payload.Status == "ok"
}

func (v *binViewer) close() {
	_ = v.conn.Close()
	<-v.done
}
