package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store/postgres"
	"gorm.io/gorm"
)

// Recording a batch of results must find its deliveries by id, whatever the planner believes
// about the queue. On a table never analyzed, with 2,000 to 200,000 pending deliveries, the
// planner chose to hash every pending delivery, read through their partial index, or to scan
// the whole table, on every record. The row lock that comes first was planned as a scan of
// the whole table while it held a few hundred rows, and the connection kept that plan as the
// table grew.
func TestRecordingFindsDeliveriesByIDWhateverTheStatisticsSay(t *testing.T) {
	d := openDriver(t)
	var rows []string
	for i := 100; i < 300; i++ {
		rows = append(rows, fmt.Sprintf(`["dlv_%08d","succeeded",1,0,200,null,"pending"]`, i))
	}
	for _, n := range []int{300, 2000, 20000, 200000} {
		if err := d.Writer.Exec(`TRUNCATE deliveries`).Error; err != nil {
			t.Fatal(err)
		}
		if err := d.Writer.Exec(`INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, next_attempt_at, created_at, updated_at)
			SELECT 'dlv_' || lpad(g::text, 8, '0'), 'evt_' || g, 'wh_' || (g % 4), 'message.received', 'pending', 0, now(), now()
			FROM generate_series(1, ?) g`, n).Error; err != nil {
			t.Fatal(err)
		}
		var plan, lockPlan []string
		ids := []string{"dlv_00000150", "dlv_00000120", "dlv_00000299"}
		err := d.Recorder().Transaction(func(tx *gorm.DB) error {
			if err := tx.Raw(`EXPLAIN `+postgres.LockRecordedSQL, postgres.TextArray(ids)).Scan(&lockPlan).Error; err != nil {
				return err
			}
			return tx.Raw(`EXPLAIN `+postgres.UpdateDeliveredSQL(d), time.Now(), "["+strings.Join(rows, ",")+"]").Scan(&plan).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "Index Scan using deliveries_pkey") || strings.Contains(text, "Seq Scan on deliveries") ||
			strings.Contains(text, "deliveries_webhook_due") {
			t.Errorf("with %d pending deliveries the record's plan does not look them up by id:\n%s", n, text)
		}
		if text := strings.Join(lockPlan, "\n"); !strings.Contains(text, "deliveries_pkey") || strings.Contains(text, "Seq Scan") {
			t.Errorf("with %d pending deliveries the record's row lock does not find them by id:\n%s", n, text)
		}
	}
}

// A record writes the health of all its webhooks in one statement, and replicas' records lock
// those shared rows in one order only if the statement walks its rows as given (sorted by id):
// the rows given drive a nested loop that finds each webhook by its key, whatever the table's
// size or statistics.
func TestTheHealthOfARecordsWebhooksIsWrittenInTheOrderGiven(t *testing.T) {
	d := openDriver(t)
	for _, n := range []int{3, 2000} {
		if err := d.Writer.Exec(`INSERT INTO webhooks (id, name, url, events, enabled, created_at, updated_at)
			SELECT 'wh_' || lpad(g::text, 8, '0'), 'w', 'https://example.com', 'message.received', true, now(), now()
			FROM generate_series(1, ?) g ON CONFLICT DO NOTHING`, n).Error; err != nil {
			t.Fatal(err)
		}
		var plan []string
		err := d.Recorder().Transaction(func(tx *gorm.DB) error {
			now := time.Now()
			return tx.Raw(`EXPLAIN `+postgres.HealthSQL(d), now, now,
				`[["wh_00000001",1],["wh_00000002",0],["wh_00000003",1]]`, now).Scan(&plan).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		loop, fn, idx := strings.Index(text, "Nested Loop"), strings.Index(text, "Function Scan"), strings.Index(text, "Index Scan using webhooks_pkey")
		if loop < 0 || fn < loop || idx < fn {
			t.Errorf("with %d webhooks the health is not written row by row in the order given:\n%s", n, text)
		}
	}
}
