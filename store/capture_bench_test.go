package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/storetest"
	"github.com/hookrelay/hookrelay/models"
)

// BenchmarkInsertCaptures stores captures of 1 KiB, per at a time in one transaction (a
// group commit of a busy bin: 1 to 16), into a bin already at its bound of 500 (keep 500,
// bounded a tenth at a time) or never bounded (keep 0).
func BenchmarkInsertCaptures(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		for _, per := range []int{1, 3, 8, 16} {
			for _, keep := range []int{0, 500} {
				b.Run(fmt.Sprintf("%s/per=%d/keep=%d", be.Name, per, keep), func(b *testing.B) {
					benchInsertCaptures(b, be.DSN(b), per, keep)
				})
			}
		}
	}
}

func benchInsertCaptures(b *testing.B, dsn string, per, keep int) {
	ctx := context.Background()
	s := storetest.Open(b, dsn)
	bin := &models.Bin{Name: "bench"}
	if err := s.CreateBin(ctx, bin); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	headers := `{"Content-Type":["application/json"],"User-Agent":["bench"],"X-Webhook-Signature":["` +
		string(bytes.Repeat([]byte("a"), 64)) + `"]}`
	batch := func() []*models.Capture {
		cs := make([]*models.Capture, per)
		for i := range cs {
			cs[i] = &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: headers,
				Body: body, Size: int64(len(body)), RemoteAddr: "127.0.0.1:5000", ReceivedAt: time.Now().UTC(),
				Verdicts: `{"signature":"valid"}`, Answered: 200}
		}
		return cs
	}
	for range 500 / per {
		if err := s.InsertCaptures(ctx, batch(), keep); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		if err := s.InsertCaptures(ctx, batch(), keep); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*per), "ns/capture")
	if n, err := s.CountCaptures(ctx, bin.ID, keep); keep > 0 && (err != nil || n != int64(keep)) {
		b.Fatalf("bin holds %d (%v), want %d", n, err, keep)
	}
}

// BenchmarkCaptureReads lists and counts a bin that has taken churn captures of 1 KiB in
// groups of 10 with keep 500, as a bin under a steady stream has: the bound deleted all but
// the newest 500, and nothing has vacuumed since.
func BenchmarkCaptureReads(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		for _, churn := range []int{1000, 20000} {
			b.Run(fmt.Sprintf("%s/churn=%d", be.Name, churn), func(b *testing.B) {
				ctx := context.Background()
				s := storetest.Open(b, be.DSN(b))
				bin := &models.Bin{Name: "bench"}
				if err := s.CreateBin(ctx, bin); err != nil {
					b.Fatal(err)
				}
				body := bytes.Repeat([]byte("x"), 1024)
				for range churn / 10 {
					cs := make([]*models.Capture, 10)
					for i := range cs {
						cs[i] = &models.Capture{BinID: bin.ID, Method: "POST", Path: "/inspect/" + bin.ID, Headers: `{}`,
							Body: body, Size: int64(len(body)), ReceivedAt: time.Now().UTC(), Verdicts: `{}`, Answered: 200}
					}
					if err := s.InsertCaptures(ctx, cs, 500); err != nil {
						b.Fatal(err)
					}
				}
				b.Run("list", func(b *testing.B) {
					for b.Loop() {
						list, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 50}, 1024, 500)
						if err != nil || len(list) != 50 {
							b.Fatal(len(list), err)
						}
					}
				})
				b.Run("list-deep", func(b *testing.B) {
					list, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 50}, 1024, 500)
					if err != nil {
						b.Fatal(err)
					}
					for b.Loop() {
						if _, _, err := s.ListCaptures(ctx, bin.ID, models.Page{Limit: 50, Cursor: list[49].ID}, 1024, 500); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("count", func(b *testing.B) {
					for b.Loop() {
						if _, err := s.CountCaptures(ctx, bin.ID, 500); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
