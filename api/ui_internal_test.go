package api

import (
	"strings"
	"testing"
)

// cspDirective returns the named directive of a Content-Security-Policy, or "".
func cspDirective(csp, name string) string {
	for _, d := range strings.Split(csp, ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

func TestContentSecurityPolicyIgnoresAHostThatIsNotPlain(t *testing.T) {
	for _, host := range []string{"evil.example; script-src *", "a b", "", "x'y"} {
		t.Run(host, func(t *testing.T) {
			csp := contentSecurityPolicy(host)
			if got := cspDirective(csp, "connect-src"); got != "connect-src 'self'" {
				t.Errorf("host %q: %s, want connect-src 'self'", host, got)
			}
			if strings.Count(csp, "script-src") != 1 {
				t.Errorf("host %q smuggled a directive: %s", host, csp)
			}
		})
	}
	if got := cspDirective(contentSecurityPolicy("[::1]:8080"), "connect-src"); got != "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080" {
		t.Errorf("IPv6 host: %s", got)
	}
}
