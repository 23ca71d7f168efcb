package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client talks to Hookrelay's API as the admin over pooled keep-alive connections.
type client struct {
	base  string
	token string
	http  *http.Client
	// traceContext: the webhooks it creates ask for traceparent headers (-tracing).
	traceContext bool
}

func newClient(base, token string, conns int) *client {
	return &client{base: base, token: token, http: newHTTPClient(conns)}
}

// newHTTPClient is a plain keep-alive client; its idle pool is sized to the concurrency so
// connections are reused rather than reopened (the default keeps only 2 per host).
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
}

// post sends a JSON body and returns the status and response body.
func (c *client) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// createWebhook creates a webhook with a Standard Webhooks secret for message.received.
func (c *client) createWebhook(ctx context.Context, name, url string) (string, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	body, _ := json.Marshal(map[string]any{"name": name, "url": url, "secret": "whsec_" + base64.StdEncoding.EncodeToString(key),
		"events": []string{"message.received"}, "trace_context": c.traceContext})
	status, resp, err := c.post(ctx, "/api/v1/webhooks", body)
	if err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("create webhook: HTTP %d: %s", status, resp)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(resp, &out); err != nil {
		return "", fmt.Errorf("create webhook: %w", err)
	}
	return out.ID, nil
}

// getJSON reads path as the admin and decodes its 200 answer into out.
func (c *client) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// spilledSince reads whether a webhook is spilled (its backlog object) and since when.
func (c *client) spilledSince(ctx context.Context, id string) (time.Time, bool, error) {
	var w struct {
		Backlog *struct {
			SpilledSince time.Time `json:"spilled_since"`
		} `json:"backlog"`
	}
	if err := c.getJSON(ctx, "/api/v1/webhooks/"+id, &w); err != nil {
		return time.Time{}, false, fmt.Errorf("read webhook: %w", err)
	}
	if w.Backlog == nil {
		return time.Time{}, false, nil
	}
	return w.Backlog.SpilledSince, true, nil
}

// padding makes the delivered body about 1 KiB, the size the loopback ceiling is measured with.
var padding = strings.Repeat("x", 560)

// eventData is a message.received data object carrying its publish time (unix ns) in
// content, where the sink finds it.
func eventData(i int, sent time.Time) []byte {
	b := make([]byte, 0, 900)
	b = append(b, `{"conversation_id":`...)
	b = strconv.AppendInt(b, int64(i%100000+1), 10)
	b = append(b, `,"message_id":`...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	b = append(b, `,"content":"bench t=`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, ' ')
	b = append(b, padding...)
	b = append(b, `","visitor_name":"John Doe","visitor_email":"john@example.com","visitor_phone":"+1234567890",`+
		`"visitor_ip":"192.168.1.100","current_url":"https://example.com/products","status":"open"}`...)
	return b
}

func eventBody(i int, sent time.Time) []byte {
	b := make([]byte, 0, 1000)
	b = append(b, `{"event":"message.received","data":`...)
	b = append(b, eventData(i, sent)...)
	return append(b, '}')
}

func batchBody(from, n int, sent time.Time) []byte {
	b := make([]byte, 0, n*1000+16)
	b = append(b, `{"events":[`...)
	for i := from; i < from+n; i++ {
		if i > from {
			b = append(b, ',')
		}
		b = append(b, eventBody(i, sent)...)
	}
	return append(b, "]}"...)
}

// closedLoop runs total operations on conc goroutines, each starting the next operation as
// soon as its previous one ends. It returns the wall time and the number of failures; the
// first failure's error is kept.
func closedLoop(ctx context.Context, total, conc int, op func(ctx context.Context, i int) error) (time.Duration, int, error) {
	var next atomic.Int64
	var failures atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				if err := op(ctx, i); err != nil {
					failures.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), int(failures.Load()), firstErr
}

// openLoop starts op at a fixed rate for total operations, whatever the server's speed, with
// at most maxOut in flight (past that it waits, and the schedule slips: reported as late).
// op receives the operation's scheduled time, which is what latency is measured from, so a
// slow server cannot hide its queueing behind a slower publisher.
func openLoop(ctx context.Context, rate float64, total, maxOut int, op func(ctx context.Context, i int, scheduled time.Time) error) (time.Duration, int, int, error) {
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxOut)
	var failures atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	late := 0
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Now()
		due := min(total, int(now.Sub(start)/interval)+1)
		for ; i < due; i++ {
			select {
			case sem <- struct{}{}:
			default:
				late++
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					// Operations under way run to their answer and are counted.
					wg.Wait()
					return time.Since(start), int(failures.Load()), late, ctx.Err()
				}
			}
			wg.Add(1)
			scheduled := start.Add(time.Duration(i) * interval)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				if err := op(ctx, i, scheduled); err != nil {
					failures.Add(1)
					once.Do(func() { firstErr = err })
				}
			}(i)
		}
		if i < total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		}
	}
	wg.Wait()
	return time.Since(start), int(failures.Load()), late, firstErr
}

// ceiling measures the raw loopback rate: the same sink, hit directly by a plain keep-alive
// Go client with the given concurrency and a 1 KiB body, for total requests. With ownProcess
// the client runs in a process of its own (this program, started again), as Hookrelay's
// sender does when the bench runs the binary: the two sides then pay for crossing between
// processes alike, and the ratio compares the pipeline with the plain client, not one
// process with two.
func ceiling(ctx context.Context, total, conc int, ownProcess bool) (float64, error) {
	s, err := startSink(int64(total), false)
	if err != nil {
		return 0, err
	}
	defer s.close()
	var rate float64
	if ownProcess {
		rate, err = ceilingInChild(ctx, s.base+"/ceiling", total, conc)
	} else {
		var elapsed time.Duration
		elapsed, err = ceilingClient(ctx, s.base+"/ceiling", total, conc)
		rate = float64(total) / elapsed.Seconds()
	}
	if err != nil {
		return 0, err
	}
	if got := s.count.Load(); got != int64(total) {
		return 0, fmt.Errorf("the sink counted %d of the %d ceiling requests", got, total)
	}
	return rate, nil
}

// ceilingClient is the plain client: total POSTs of 1 KiB to url, conc at a time.
func ceilingClient(ctx context.Context, url string, total, conc int) (time.Duration, error) {
	hc := newHTTPClient(conc)
	defer hc.CloseIdleConnections()
	body := bytes.Repeat([]byte("x"), 1024)
	elapsed, failures, firstErr := closedLoop(ctx, total, conc, func(ctx context.Context, _ int) error {
		return postOK(ctx, hc, url, body, nil)
	})
	if failures > 0 {
		return 0, fmt.Errorf("%d of %d ceiling requests failed: %w", failures, total, firstErr)
	}
	return elapsed, nil
}

// postOK posts a JSON body, with the headers set adds, and wants 200 back; the answer's body
// is read to the end so the connection is reused.
func postOK(ctx context.Context, hc *http.Client, url string, body []byte, set func(h http.Header)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if set != nil {
		set(req.Header)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}

// ceilingChildEnv, when set in this program's environment, makes it the ceiling's client
// process (see runCeilingChild) instead of the bench.
const ceilingChildEnv = "HOOKRELAY_BENCH_CEILING_CLIENT"

// ceilingInChild runs ceilingClient in a new process of this program and returns its rate.
func ceilingInChild(ctx context.Context, url string, total, conc int) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", ceilingChildEnv, url, total, conc))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("ceiling client process: %w", err)
	}
	var secs float64
	if _, err := fmt.Sscan(string(out), &secs); err != nil || secs <= 0 {
		return 0, fmt.Errorf("ceiling client process printed %q", out)
	}
	return float64(total) / secs, nil
}

// runCeilingChild is the whole of the ceiling's client process: it prints the seconds the
// requests took, and reports whether it was asked to run at all.
func runCeilingChild(ctx context.Context) bool {
	spec, ok := os.LookupEnv(ceilingChildEnv)
	if !ok {
		return false
	}
	var url string
	var total, conc int
	if _, err := fmt.Sscan(spec, &url, &total, &conc); err != nil || total < 1 || conc < 1 {
		fmt.Fprintf(os.Stderr, "bench: %s=%q: want \"url total concurrency\"\n", ceilingChildEnv, spec)
		os.Exit(2)
	}
	elapsed, err := ceilingClient(ctx, url, total, conc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: ceiling client:", err)
		os.Exit(1)
	}
	fmt.Println(elapsed.Seconds())
	return true
}
