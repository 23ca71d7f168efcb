// Package cli holds the hookrelay subcommands for people who build against a running
// Hookrelay from their own machine: listen (stream a bin's captures to a local receiver),
// trigger (publish a sample event) and verify (check a saved request's signatures offline).
// The server itself is started by main.go as before; these only talk to it over its API.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes: 0 success, 1 the command ran and failed (or a check did not pass), 2 the
// command could not run as asked (bad flags, unusable input, unknown event type).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// DefaultURL is where a server started with its default --addr (:8080) answers.
const DefaultURL = "http://127.0.0.1:8080"

// Env is how the commands see their surroundings; tests give their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

type command func(ctx context.Context, env Env, args []string) int

var commands = map[string]command{
	"listen":  listen,
	"trigger": trigger,
	"verify":  verify,
}

// Run runs the subcommand args[0] names and reports its exit code; ok is false when args do
// not name one, and the caller goes on as the server. Ctrl-C (or SIGTERM) cancels the
// command's context, which each command treats as a clean end.
func Run(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd(ctx, Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, args[1:]), true
}

// newFlags returns a flag set that prints its usage (with every flag) to stderr.
func newFlags(env Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("hookrelay "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: hookrelay %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; the second result is the exit code to return when parsing ended the
// command (-h prints the usage and exits 0, a bad flag exits 2).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, false
	}
	if err != nil {
		return exitUsage, false
	}
	return 0, true
}

// parseWithArgs is parse for commands that take positional arguments: flags may come before
// or after them (hookrelay trigger message.received --data '{…}').
func parseWithArgs(fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	for {
		if code, ok := parse(fs, args); !ok {
			return nil, code, false
		}
		if fs.NArg() == 0 {
			return positional, 0, true
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// serverFlags are the flags of the commands that talk to a server.
type serverFlags struct {
	url, token string
}

func addServerFlags(fs *flag.FlagSet, env Env) *serverFlags {
	sf := &serverFlags{}
	fs.StringVar(&sf.url, "url", firstSet(env.Getenv("HOOKRELAY_URL"), DefaultURL), "Hookrelay's base URL (env HOOKRELAY_URL)")
	// The environment's token is read after parsing rather than made the flag's default, so
	// that --help does not print it.
	fs.StringVar(&sf.token, "token", "", "API token (env HOOKRELAY_TOKEN, else HOOKRELAY_ADMIN_TOKEN)")
	return sf
}

// client checks the flags and returns an API client, or prints what is missing.
func (sf *serverFlags) client(env Env) (*apiClient, bool) {
	sf.token = firstSet(sf.token, env.Getenv("HOOKRELAY_TOKEN"), env.Getenv("HOOKRELAY_ADMIN_TOKEN"))
	if sf.token == "" {
		fmt.Fprintln(env.Stderr, "hookrelay: an API token is needed: --token or HOOKRELAY_TOKEN")
		return nil, false
	}
	c, err := newAPIClient(sf.url, sf.token)
	if err != nil {
		fmt.Fprintln(env.Stderr, "hookrelay: --url:", err)
		return nil, false
	}
	return c, true
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
