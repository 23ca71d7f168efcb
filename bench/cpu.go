package main

import (
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/hookrelay/hookrelay/internal/procstat"
)

// Where a phase's CPU went. On two cores shared by the load generator, the sink, Hookrelay and
// PostgreSQL, a rate that falls short of its target may be Hookrelay's cost or the others':
// the figures below say whose.

// cpuReading is one reading of the CPU time used so far, in seconds, or (cpuSince) the time
// used over a phase ÷ its wall time.
type cpuReading struct {
	process  float64 // the bench and Hookrelay together
	server   float64 // the Hookrelay process alone: only with -binary, else 0
	database float64 // every PostgreSQL process on this machine: 0 on SQLite or a remote server
	machine  float64 // every process on the machine
}

// readCPU reads the CPU time so far.
func (r *runner) readCPU(h hookrelay) cpuReading {
	c := cpuReading{process: h.cpuSeconds(), server: h.serverSeconds(), machine: procstat.Machine()}
	if r.localDatabase() {
		c.database = procstat.Command("postgres")
	}
	return c
}

// cpuSince is the CPU time used since from, each part ÷ wall seconds; 0 for a part not measured.
func (r *runner) cpuSince(h hookrelay, from cpuReading, wall float64) cpuReading {
	now := r.readCPU(h)
	share := func(a, b float64) float64 {
		if a <= 0 || b <= 0 || wall <= 0 {
			return 0 // not measured
		}
		return (b - a) / wall
	}
	return cpuReading{process: share(from.process, now.process), server: share(from.server, now.server),
		database: share(from.database, now.database), machine: share(from.machine, now.machine)}
}

// localDatabase says whether the scenarios' PostgreSQL server runs on this machine, where its
// processes' CPU time can be read: a loopback host or a Unix socket.
func (r *runner) localDatabase() bool {
	if r.be.name != "postgres" {
		return false
	}
	u, err := url.Parse(r.be.url)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "" {
		host = u.Query().Get("host")
	}
	if host == "" || host == "localhost" || strings.HasPrefix(host, "/") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// selfSeconds is this process's CPU time.
func selfSeconds() float64 { return procstat.Process(os.Getpid()) }
