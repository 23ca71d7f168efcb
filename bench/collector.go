package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// collector stands in for an OpenTelemetry collector with -tracing: it takes OTLP/HTTP
// exports over loopback and discards them, so a traced run pays for building, encoding and
// sending spans, as it would in production, but not for a collector's own work.
type collector struct {
	url      string
	srv      *http.Server
	requests atomic.Int64
	bytes    atomic.Int64
}

func startCollector() (*collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &collector{url: "http://" + ln.Addr().String()}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		c.requests.Add(1)
		c.bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() {
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return c, nil
}

func (c *collector) close() { _ = c.srv.Close() }
