package testsrv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Collector stands in for an OpenTelemetry collector: it takes OTLP/HTTP exports, answers
// each with its status, and keeps what it got, so a test can look for spans in the protobuf.
type Collector struct {
	*httptest.Server

	mu      sync.Mutex
	exports []string // "METHOD /path content-type", one per request
	body    []byte
}

// NewCollector starts a collector answering status, closed at the end of the test.
func NewCollector(t testing.TB, status int) *Collector {
	t.Helper()
	c := &Collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.exports = append(c.exports, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		c.body = append(c.body, b...)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(status)
	}))
	t.Cleanup(c.Server.Close)
	return c
}

// Exports lists the requests so far.
func (c *Collector) Exports() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.exports...)
}

// Spans is every request body so far, one after the other.
func (c *Collector) Spans() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.body...)
}
