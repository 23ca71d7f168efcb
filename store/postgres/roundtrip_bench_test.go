package postgres_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/hookrelay/hookrelay/internal/procstat"
	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/jackc/pgx/v5"
)

// BenchmarkRoundTrip is what one statement's round trip to the server costs this machine, for
// weighing a change that merges statements: a trivial statement sent alone and waited for, and
// four sent together in one pipeline (a pgx batch). Besides the time, it reports the CPU the
// whole machine spent per statement (machine-µs/stmt), the server's share included: on a
// machine the server shares, that is what a round trip less would give back.
//
//	go test ./store/postgres -run '^$' -bench RoundTrip (with HOOKRELAY_TEST_POSTGRES_URL set)
func BenchmarkRoundTrip(b *testing.B) {
	requirePostgres(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, storetest.PostgresDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, together := range []int{1, 4} {
		b.Run("together="+strconv.Itoa(together), func(b *testing.B) {
			busy := procstat.Machine()
			for i := 0; b.Loop(); i++ {
				batch := &pgx.Batch{}
				for range together {
					batch.Queue("SELECT $1::int", i)
				}
				if err := conn.SendBatch(ctx, batch).Close(); err != nil {
					b.Fatal(err)
				}
			}
			if busy > 0 {
				b.ReportMetric((procstat.Machine()-busy)/float64(b.N*together)*1e6, "machine-µs/stmt")
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*together), "µs/stmt")
		})
	}
}
