package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// sink is the receiver every scenario delivers to: a plain net/http server that counts
// requests and, for the latency scenarios, the time from publish to receipt. It verifies
// nothing expensive (no signature checks) so that it costs the machine as little as possible
// and the figures are Hookrelay's.
//
// Paths: /ok/<n> answers 200 (counted, latency recorded); /hang/<n> holds the request until
// the client gives up (the isolation scenario's dead endpoints); /ceiling answers 200 and is
// only counted (the raw loopback ceiling).
type sink struct {
	srv  *http.Server
	ln   net.Listener
	base string

	want  int64 // /ok and /ceiling requests expected in all
	count atomic.Int64
	hung  atomic.Int64
	first atomic.Int64 // unix ns of the first counted receipt
	last  atomic.Int64 // unix ns of the receipt that completed want
	done  chan struct{}

	lat     []int64 // ns, publish → receipt, in arrival order
	latSent []int64 // unix ns each of them was published
	latNext atomic.Int64

	closing chan struct{} // hanging handlers return when it is closed
	bufs    sync.Pool
}

// startSink listens on a fresh loopback port. want is how many counted requests complete
// the scenario; latencies (up to want) are kept when record is set.
func startSink(want int64, record bool) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, base: "http://" + ln.Addr().String(), want: want, done: make(chan struct{}),
		closing: make(chan struct{})}
	s.bufs.New = func() any { return bytes.NewBuffer(make([]byte, 0, 2048)) }
	if record {
		s.lat, s.latSent = make([]int64, want), make([]int64, want)
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case len(p) >= 6 && p[:6] == "/hang/":
		s.hung.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		case <-time.After(2 * time.Minute):
		}
		return
	case p == "/ceiling" || (len(p) >= 4 && p[:4] == "/ok/"):
	default:
		http.NotFound(w, r)
		return
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(r.Body)
	now := time.Now().UnixNano()
	if err == nil && s.lat != nil && p != "/ceiling" {
		if sent, ok := sentAt(buf.Bytes()); ok {
			if i := s.latNext.Add(1) - 1; i < int64(len(s.lat)) {
				s.lat[i], s.latSent[i] = now-sent, sent
			}
		}
	}
	s.bufs.Put(buf)
	w.WriteHeader(http.StatusOK)
	s.first.CompareAndSwap(0, now)
	if s.count.Add(1) == s.want {
		s.last.Store(now)
		close(s.done)
	}
}

// marker precedes the publish time (unix ns) the bench writes into data.content.
var marker = []byte(`"content":"bench t=`)

// sentAt finds the publish time the bench embedded in a delivered body.
func sentAt(body []byte) (int64, bool) {
	i := bytes.Index(body, marker)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(marker):]
	end := bytes.IndexByte(rest, ' ')
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}

// wait blocks until want requests arrived or ctx ends; it reports whether all arrived.
func (s *sink) wait(ctx context.Context) bool {
	select {
	case <-s.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// latencies returns the recorded publish-to-receipt times of the events published at or
// after from, and of those published before it.
func (s *sink) latencies(from time.Time) (measured, before []time.Duration) {
	n := min(s.latNext.Load(), int64(len(s.lat)))
	for i := range n {
		if s.latSent[i] >= from.UnixNano() {
			measured = append(measured, time.Duration(s.lat[i]))
		} else {
			before = append(before, time.Duration(s.lat[i]))
		}
	}
	return measured, before
}

// writeLatencies writes every recorded event's publish time, in ms from the start of the
// measured period (negative in the warm-up), and its publish-to-receipt time in ms, a line
// each in the order of publishing, under a header line.
func (s *sink) writeLatencies(w io.Writer, from time.Time) error {
	n := min(s.latNext.Load(), int64(len(s.lat)))
	order := make([]int64, n)
	for i := range order {
		order[i] = int64(i)
	}
	slices.SortFunc(order, func(a, b int64) int { return cmp.Compare(s.latSent[a], s.latSent[b]) })
	bw := bufio.NewWriter(w)
	bw.WriteString("published_ms\tlatency_ms\n")
	for _, i := range order {
		fmt.Fprintf(bw, "%.3f\t%.3f\n", float64(s.latSent[i]-from.UnixNano())/1e6, float64(s.lat[i])/1e6)
	}
	return bw.Flush()
}

func (s *sink) close() {
	close(s.closing)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = s.srv.Close()
	}
}
