package store_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/internal/wait"
	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/postgres"
	"github.com/hookrelay/hookrelay/store/sqlite"
)

// gatedBins is a real driver whose bin reads are counted, and whose answers are held until
// release is closed, so a test can line requests up behind one read, or change the bin between
// a read and its answer.
type gatedBins struct {
	store.Driver
	reads   atomic.Int64 // reads started
	read    atomic.Int64 // reads the database has answered
	release chan struct{}
}

func (g *gatedBins) GetBin(ctx context.Context, id string) (*models.Bin, error) {
	g.reads.Add(1)
	b, err := g.Driver.GetBin(ctx, id)
	g.read.Add(1)
	select {
	case <-g.release:
		return b, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openGated opens a store on the backend's database whose bin reads go through a gatedBins.
func openGated(t *testing.T, b storetest.Backend) (*store.Store, *gatedBins) {
	t.Helper()
	ctx := context.Background()
	dsn := b.DSN(t)
	var d store.Driver
	var err error
	if b.Name == "postgres" {
		d, err = postgres.Open(ctx, dsn)
	} else {
		d, err = sqlite.Open(ctx, dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedBins{Driver: d, release: make(chan struct{})}
	s := store.New(g)
	t.Cleanup(func() { _ = s.Close() })
	return s, g
}

// waitInGetBin waits until n goroutines are inside Store.GetBin: reading, or waiting for a read.
func waitInGetBin(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	wait.Until(t, fmt.Sprintf("%d goroutines are in GetBin", n), func() bool {
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "store.(*Store).GetBin(") >= n
	})
}

func TestBinMissingFromTheCacheIsReadOnceForEveryoneAskingAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s, g := openGated(t, b)
		ctx := context.Background()
		bin := &models.Bin{Name: "busy", Secret: "whsec_x"}
		if err := s.CreateBin(ctx, bin); err != nil {
			t.Fatal(err)
		}
		unknown := models.NewBinID()
		const callers = 32
		var wg sync.WaitGroup
		errs := make(chan error, 2*callers)
		for i := range 2 * callers {
			wg.Go(func() {
				if i%2 == 1 {
					if _, err := s.GetBin(ctx, unknown); !errors.Is(err, models.ErrNotFound) {
						errs <- err
					}
					return
				}
				got, err := s.GetBin(ctx, bin.ID)
				if err != nil {
					errs <- err
				} else if got.Name != "busy" || got.Secret != "whsec_x" {
					errs <- errors.New("read " + got.Name + ", want the bin created")
				}
			})
		}
		waitInGetBin(t, 2*callers)
		close(g.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := g.reads.Load(); n != 2 {
			t.Errorf("%d concurrent requests for one bin and %d for an unknown one made %d reads of the database, want one each", callers, callers, n)
		}
		// Answered from the cache now.
		if _, err := s.GetBin(ctx, bin.ID); err != nil {
			t.Fatal(err)
		}
		if n := g.reads.Load(); n != 2 {
			t.Errorf("a cached bin was read again (%d reads)", n)
		}
	})
}

func TestBinReadSharedOutlivesAWaiterThatGoesAway(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s, g := openGated(t, b)
		bin := &models.Bin{Name: "shared"}
		if err := s.CreateBin(context.Background(), bin); err != nil {
			t.Fatal(err)
		}
		// The first request starts the read, then goes away before it ends.
		first, cancel := context.WithCancel(context.Background())
		firstErr := make(chan error, 1)
		go func() {
			_, err := s.GetBin(first, bin.ID)
			firstErr <- err
		}()
		waitInGetBin(t, 1)
		second := make(chan error, 1)
		go func() {
			got, err := s.GetBin(context.Background(), bin.ID)
			if err == nil && got.ID != bin.ID {
				err = errors.New("read another bin")
			}
			second <- err
		}()
		waitInGetBin(t, 2)
		cancel()
		if err := <-firstErr; !errors.Is(err, context.Canceled) {
			t.Errorf("the request that went away got %v, want context.Canceled", err)
		}
		close(g.release)
		if err := <-second; err != nil {
			t.Errorf("the request still waiting got %v, want the bin", err)
		}
		if n := g.reads.Load(); n != 1 {
			t.Errorf("%d reads, want the one both requests shared", n)
		}
	})
}

func TestBinChangedDuringAReadIsNotCachedAsItWas(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s, g := openGated(t, b)
		ctx := context.Background()
		bin := &models.Bin{Name: "before", ResponseStatus: 200}
		if err := s.CreateBin(ctx, bin); err != nil {
			t.Fatal(err)
		}
		// A read that saw the bin before the change and answers after it must not leave the
		// old version cached for the requests after the change.
		read := make(chan error, 1)
		go func() {
			_, err := s.GetBin(ctx, bin.ID)
			read <- err
		}()
		wait.Until(t, "the bin is read", func() bool { return g.read.Load() > 0 })
		changed := *bin
		changed.Name, changed.ResponseStatus = "after", 202
		if err := s.UpdateBin(ctx, &changed); err != nil {
			t.Fatal(err)
		}
		close(g.release)
		if err := <-read; err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBin(ctx, bin.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "after" || got.ResponseStatus != 202 {
			t.Errorf("after the update GetBin read %q answering %d, want %q answering 202", got.Name, got.ResponseStatus, "after")
		}
		if n := g.reads.Load(); n != 2 {
			t.Errorf("%d reads, want 2: the read under way, then one after the change", n)
		}
	})
}
