// Package store is Hookrelay's persistence: the durable outbox (events and their deliveries,
// written in one transaction), claims with leases, attempt records, spills of webhooks that
// fall behind, inspector captures, API keys, sessions and settings, and the migrations that
// shape the schema.
//
// A Store is a storedriver.Driver chosen by Open from the DSN: store/sqlite for a file, owned
// by one process, or store/postgres for a database shared by replicas. Each driver has its
// own SQL and machinery; this package adds what is the same on both (group commits, the bin
// cache) and asks nothing of the database. Consumers declare the small part of Store they
// use as an interface of their own.
package store

import (
	"context"
	"strings"

	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/hookrelay/hookrelay/store/sqlite"
	"github.com/hookrelay/hookrelay/store/storedriver"
)

// Driver is what a database gives Hookrelay; see package storedriver.
type Driver = storedriver.Driver

// Store is a Driver with what is the same on every database on top: the group commit of
// single publishes (PublishOne) and of inspector captures (InsertCapture), and a short-lived
// cache of bins. Every method of Driver is a method of Store.
type Store struct {
	engine
	publishes group[PublishInput, Published]
	captures  group[captureIn, struct{}]
	bins      binCache
}

// engine names the embedded Driver so the field stays unexported while its methods are
// promoted to Store.
type engine = storedriver.Driver

// Open connects to dsn and migrates the database: a postgres:// or postgresql:// URL opens
// PostgreSQL; anything else is a SQLite file path (an optional sqlite:// prefix is dropped).
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		d, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return New(d), nil
	}
	d, err := sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		return nil, err
	}
	return New(d), nil
}

// New returns a Store on an open driver.
func New(d Driver) *Store {
	s := &Store{engine: d}
	s.publishes.take, s.publishes.run = takePublishes, s.publishBatch
	s.captures.take, s.captures.run = takeCaptures, s.captureBatch
	s.captures.gather = newGathering(captureGatherTo, captureGatherWait)
	return s
}
