package cli

import "testing"

// Run takes only its three commands; everything else (no arguments, the server's flags) is
// left to main.go's server start-up.
func TestRunTakesOnlyItsCommands(t *testing.T) {
	for _, args := range [][]string{nil, {"--addr", ":9090"}, {"-admin-token", "x"}, {"serve"}} {
		if _, ok := Run(args); ok {
			t.Errorf("Run(%q) took the arguments", args)
		}
	}
	for _, name := range []string{"listen", "trigger", "verify"} {
		if code, ok := Run([]string{name, "-h"}); !ok || code != 0 {
			t.Errorf("Run(%s -h) = %d, %v; want 0, true", name, code, ok)
		}
	}
}
