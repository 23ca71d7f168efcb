package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// BlockedError is returned when the SSRF guard refuses a connection.
type BlockedError struct {
	IP     netip.Addr
	Reason string
}

// Error is what API users see in the attempt log. It names neither the address nor its kind:
// a webhook URL's hostname is the user's, but what it resolves to inside our network is not
// theirs to learn. The address is logged server side instead (guardControl).
func (e *BlockedError) Error() string {
	return "blocked by SSRF guard: the target's address is not a public one (start with --allow-private-targets to allow it)"
}

var extraBlocked = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},        // embeds any IPv4 address, private ones too
	{netip.MustParsePrefix("fec0::/10"), "site-local"},  // deprecated, still routed inside some networks
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"}, // deprecated form that embeds an IPv4 address
}

// BlockReason says why ip may not be a delivery target, or "" when it may.
func BlockReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip.IsUnspecified():
		return "unspecified"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, b := range extraBlocked {
		if b.prefix.Contains(ip) {
			return b.reason
		}
	}
	return ""
}

// guardControl runs after DNS resolution, on the address actually being dialled, so a
// hostname that resolves (or re-resolves) to an internal address is refused as well.
func guardControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("SSRF guard: cannot parse %q", host)
	}
	if reason := BlockReason(ip); reason != "" {
		slog.Warn("SSRF guard refused a connection", "address", ip.Unmap().String(), "kind", reason)
		return &BlockedError{IP: ip.Unmap(), Reason: reason}
	}
	return nil
}

// IsBlocked reports whether err came from the SSRF guard.
func IsBlocked(err error) (*BlockedError, bool) {
	var b *BlockedError
	ok := errors.As(err, &b)
	return b, ok
}

// OwnInspectorURL reports whether target is one of this server's own /inspect/ URLs under
// publicURL. Those are always allowed, whatever the guard and --allow-http say, so the sender
// and the built-in receiver work together out of the box.
func OwnInspectorURL(publicURL, target string) bool {
	if publicURL == "" {
		return false
	}
	pu, err := url.Parse(publicURL)
	if err != nil {
		return false
	}
	tu, err := url.Parse(target)
	if err != nil || tu.User != nil {
		return false
	}
	if !strings.EqualFold(pu.Scheme, tu.Scheme) || !strings.EqualFold(hostPort(pu), hostPort(tu)) {
		return false
	}
	// Clean first so "/inspect/../api/v1" cannot pass as an inspector URL, and check the
	// decoded path too: "/inspect/%2e%2e/api" is "/inspect/../api" to a server or proxy that
	// decodes before routing.
	under := func(p, root string) bool {
		base := strings.TrimSuffix(root, "/") + "/inspect/"
		p = path.Clean(p)
		return strings.HasPrefix(p+"/", base) && len(p) >= len(base)
	}
	return under(tu.EscapedPath(), pu.EscapedPath()) && under(tu.Path, pu.Path)
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// dialer returns a DialContext that applies the guard unless allowPrivate.
func dialer(allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{KeepAlive: 30e9}
	if !allowPrivate {
		d.Control = guardControl
	}
	return d.DialContext
}

// NewGuardedClient returns an HTTP client for one-off requests to user-given URLs (the
// inspector's forward) under the rules deliveries follow: the SSRF guard at connect time
// unless allowPrivate, no proxy (it would dial for us and bypass the guard), and redirects
// returned rather than followed. timeout bounds the whole exchange.
func NewGuardedClient(allowPrivate bool, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer(allowPrivate),
			TLSHandshakeTimeout: timeout,
			IdleConnTimeout:     30 * time.Second,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			// Send only the headers we set: transparent gzip would add Accept-Encoding.
			DisableCompression: true,
		},
	}
}
