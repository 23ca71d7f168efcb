package delivery

import "github.com/hookrelay/hookrelay/models"

// NewAttempt builds the attempt log row for attempt n (1-based) of a delivery to wh from the
// response it got. The engine records it with the delivery's new state; the test action
// records it on its own. It keeps the webhook's format: with the event's body, BodyFor
// rebuilds the bytes sent.
func NewAttempt(deliveryID string, wh *models.Webhook, n int, resp *Response, test bool) *models.Attempt {
	a := &models.Attempt{
		ID: models.NewID("att"), DeliveryID: deliveryID, WebhookID: wh.ID, Number: n, Format: wh.Format,
		StartedAt: resp.StartedAt, DurationMs: resp.Duration.Milliseconds(),
		RequestHeaders: headerJSON(resp.RequestHeaders), ResponseHeaders: headerJSON(resp.Headers),
		ResponseBody: resp.Body, Outcome: models.OutcomeFailed, Test: test,
	}
	if resp.Status != 0 {
		st := resp.Status
		a.ResponseStatus = &st
	}
	if resp.OK() {
		a.Outcome = models.OutcomeSucceeded
	} else {
		e := resp.ErrorText()
		a.Error = &e
	}
	return a
}
