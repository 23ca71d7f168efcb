package sqlcommon

import "github.com/hookrelay/hookrelay/models"

// The columns of an attempt row, split by what attempts recorded together mostly share (the
// webhook, the outcome) and what each has of its own, so a driver can bind the shared values
// once per statement.
var (
	AttemptShared = []string{"webhook_id", "number", "response_status", "error", "outcome", "test", "format"}
	AttemptOwn    = []string{"id", "delivery_id", "started_at", "duration_ms", "request_headers", "response_headers", "response_body"}
)

var AttemptColumns = append(append([]string{}, AttemptShared...), AttemptOwn...)

// AttemptGroup is what attempts inserted together share: their values of AttemptShared.
type AttemptGroup struct {
	webhook   string
	number    int
	status    int
	hasStatus bool
	errText   string
	hasErr    bool
	outcome   string
	test      bool
	format    string
}

// GroupOf is what an attempt shares with the others of its insert.
func GroupOf(a *models.Attempt) AttemptGroup {
	g := AttemptGroup{webhook: a.WebhookID, number: a.Number, outcome: a.Outcome, test: a.Test, format: a.Format}
	if a.ResponseStatus != nil {
		g.status, g.hasStatus = *a.ResponseStatus, true
	}
	if a.Error != nil {
		g.errText, g.hasErr = *a.Error, true
	}
	return g
}

// AppendArgs appends the group's values in AttemptShared order, NULLs as nil.
func (g AttemptGroup) AppendArgs(args []any) []any {
	var status, errText any
	if g.hasStatus {
		status = int64(g.status)
	}
	if g.hasErr {
		errText = g.errText
	}
	return append(args, g.webhook, int64(g.number), status, errText, g.outcome, g.test, g.format)
}

// AppendOwnArgs appends an attempt's own columns (AttemptOwn order).
func AppendOwnArgs(a *models.Attempt, args []any) []any {
	return append(args, a.ID, a.DeliveryID, a.StartedAt, a.DurationMs, a.RequestHeaders, a.ResponseHeaders, a.ResponseBody)
}
