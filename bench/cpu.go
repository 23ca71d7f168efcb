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

// cpuReading is one reading of the CPU time used so far, in seconds.
type cpuReading struct {
	process  float64 // the bench and Hookrelay together
	server   float64 // the Hookrelay process alone: only with -binary, else 0
	database float64 // every PostgreSQL process on this machine: 0 on SQLite or a remote server
	machine  float64 // every process on the machine
}

// cpuShares is a phase's CPU time ÷ its wall time, per whom (cpuReading's fields).
type cpuShares struct{ process, server, database, machine float64 }

// readCPU reads the CPU time so far.
func (r *runner) readCPU(h hookrelay) cpuReading {
	c := cpuReading{process: h.cpuSeconds(), server: h.serverSeconds(), machine: procstat.Machine()}
	if r.localDatabase() {
		c.database = procstat.Command("postgres")
	}
	return c
}

// cpuSince is the shares of the time between from and now, over wall seconds.
func (r *runner) cpuSince(h hookrelay, from cpuReading, wall float64) cpuShares {
	now := r.readCPU(h)
	share := func(a, b float64) float64 {
		if a <= 0 || b <= 0 || wall <= 0 {
			return 0 // not measured
		}
		return (b - a) / wall
	}
	return cpuShares{process: share(from.process, now.process), server: share(from.server, now.server),
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
