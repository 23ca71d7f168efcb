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
		err := postgres.Recorder(d).Transaction(func(tx *gorm.DB) error {
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
