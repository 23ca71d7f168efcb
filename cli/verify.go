package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hookrelay/hookrelay/inspector"
)

// maxSaved bounds the file verify reads.
const maxSaved = 16 << 20

// verify checks a saved request's signatures with a secret, offline, with the same code a
// bin verifies with. Exit 0: every signature present verifies and at least one does; 1: not;
// 2: no secret, or the file is neither a capture as the API returns it nor an HTTP request.
func verify(_ context.Context, env Env, args []string) int {
	fs := newFlags(env, "verify", "verify --secret SECRET FILE   (FILE: a capture's JSON from GET …/requests/{rid}, or a raw HTTP/1.1 request; - reads stdin)")
	secret := fs.String("secret", "", "the webhook's signing secret (required)")
	pos, code, ok := parseWithArgs(fs, args)
	if !ok {
		return code
	}
	if *secret == "" || len(pos) != 1 {
		fmt.Fprintln(env.Stderr, "hookrelay verify: give --secret and one FILE (or - for stdin)")
		return exitUsage
	}
	raw, err := readSaved(env, pos[0])
	if err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay verify:", err)
		return exitUsage
	}
	h, body, at, err := parseSaved(raw)
	if err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay verify:", err)
		return exitUsage
	}
	v := inspector.Verify(inspector.Secrets{HexHMAC: *secret, Standard: []string{*secret}}, h, body, at)
	fmt.Fprintf(env.Stdout, "signature=%s (X-Webhook-Signature)\n", v.Signature)
	fmt.Fprintf(env.Stdout, "standard_signature=%s (webhook-signature)\n", v.StandardSignature)
	if v.TimestampSkewSeconds != nil {
		fmt.Fprintf(env.Stdout, "timestamp_skew_seconds=%d\n", *v.TimestampSkewSeconds)
	}
	fmt.Fprintf(env.Stdout, "payload=%s\n", v.Payload.Status)
	for _, p := range v.Payload.Problems {
		fmt.Fprintf(env.Stdout, "payload_problem=%s\n", quote(p))
	}
	if signaturesPass(v) {
		fmt.Fprintln(env.Stdout, "result=pass")
		return exitOK
	}
	fmt.Fprintln(env.Stdout, "result=fail")
	return exitFail
}

// signaturesPass: no signature is wrong and at least one is right.
func signaturesPass(v inspector.Verdicts) bool {
	if v.Signature == inspector.SigInvalid || v.StandardSignature == inspector.SigInvalid {
		return false
	}
	return v.Signature == inspector.SigValid || v.StandardSignature == inspector.SigValid
}

func readSaved(env Env, name string) ([]byte, error) {
	var r io.Reader = env.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxSaved+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxSaved {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxSaved)
	}
	return raw, nil
}

// parseSaved reads a capture's JSON (headers, body, received_at) or a raw HTTP/1.1 request.
// The time is when the request arrived, for the timestamp skew: received_at, else now.
func parseSaved(raw []byte) (http.Header, []byte, time.Time, error) {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		var c inspector.Capture
		if err := json.Unmarshal(trimmed, &c); err != nil || c.Headers == nil {
			return nil, nil, time.Time{}, errors.New("the file is JSON but not a capture as GET /api/v1/inspector/bins/{id}/requests/{rid} returns it")
		}
		body, err := captureBody(&c)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		at := c.ReceivedAt
		if at.IsZero() {
			at = time.Now()
		}
		return http.Header(c.Headers), body, at, nil
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("the file is neither a capture's JSON nor an HTTP/1.1 request: %v", err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("the request's body is shorter than its headers say: %v", err)
	}
	// Without Content-Length or chunked encoding a request has no body for net/http; a saved
	// file's body is whatever follows the headers.
	if req.ContentLength == 0 && len(req.TransferEncoding) == 0 && req.Header.Get("Content-Length") == "" {
		body, _ = io.ReadAll(br)
	}
	return req.Header, body, time.Now(), nil
}
