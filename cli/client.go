package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// apiClient calls a Hookrelay's API with a bearer token.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// maxAnswer bounds what is read of one API answer (a whole capture is at most 1 MiB of body,
// which base64 and JSON escaping can grow about six times).
const maxAnswer = 16 << 20

func newAPIClient(base, token string) (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", base)
	}
	return &apiClient{base: u, token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// apiError is a non-2xx answer; detail is the problem's detail when the body is one.
type apiError struct {
	method, path string
	status       int
	detail       string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.detail)
}

// do sends in (JSON, when not nil) and decodes a 2xx answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &p) != nil || p.Detail == "" {
			p.Detail = http.StatusText(resp.StatusCode)
		}
		return &apiError{method: method, path: path, status: resp.StatusCode, detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// isStatus reports whether err is an API answer with this status.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == status
}

// list is a page of a list endpoint.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pagePath adds limit and cursor to a list path.
func pagePath(path string, limit int, cursor string) string {
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return path + "?" + q.Encode()
}
