package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/inspector"
)

// forward sends the capture to the target as the server received it: same method, the body
// bytes exactly, the headers except hop-by-hop ones (the inspector's own forward drops the
// same), the query string appended to the target's. It returns the line's outcome fields.
func (s *session) forward(ctx context.Context, c *inspector.Capture) string {
	body, err := captureBody(c)
	if err != nil {
		return "status=error error=" + quote(err.Error())
	}
	u := *s.target
	if c.Query != "" {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += c.Query
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return "status=error error=" + quote(err.Error())
	}
	req.Header = inspector.ForwardHeader(c.Headers)
	// The server's forward drops Accept-Encoding because it shows the answer; listen does
	// not, so it is sent as captured (and the transport adds none of its own).
	if ae := http.Header(c.Headers).Values("Accept-Encoding"); len(ae) > 0 {
		req.Header["Accept-Encoding"] = ae
	}
	start := time.Now()
	resp, err := s.fwd.Do(req)
	if err != nil {
		return fmt.Sprintf("status=error duration=%s error=%s", since(start), quote(err.Error()))
	}
	// Read the answer so the connection can be reused; it is not shown.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return fmt.Sprintf("status=%d duration=%s", resp.StatusCode, since(start))
}

// since is the time from start in milliseconds with one decimal (a local receiver often
// answers in less than one), in ASCII for grep.
func since(start time.Time) string {
	return fmt.Sprintf("%.1fms", float64(time.Since(start).Microseconds())/1000)
}

var errNoBody = errors.New("capture body is not valid base64")

// captureBody decodes a capture's body as the API sends it (UTF-8 text or base64).
func captureBody(c *inspector.Capture) ([]byte, error) {
	if c.BodyEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(c.Body)
		if err != nil {
			return nil, errNoBody
		}
		return b, nil
	}
	return []byte(c.Body), nil
}
