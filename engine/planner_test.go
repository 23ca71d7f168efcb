package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"github.com/hookrelay/hookrelay/store"
)

// The planner is a pure function of the webhook states: each case builds states, plans once
// and compares the whole plan.
func TestPlan(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ms := now.UnixMilli()
	// hook is a webhook with work due now, a window of limit and n in flight.
	hook := func(id string, limit, inflight int, proven bool) *webhook {
		return &webhook{id: id, limit: float64(limit), inflight: inflight, proven: proven, due: true, dueAt: ms,
			sending: inflight, sendingSince: now, lastAnswer: now}
	}
	with := func(w *webhook, f func(w *webhook)) *webhook { f(w); return w }
	slots := func(kv ...any) []store.WebhookQuota {
		var out []store.WebhookQuota
		for i := 0; i < len(kv); i += 2 {
			out = append(out, store.WebhookQuota{WebhookID: kv[i].(string), Free: kv[i+1].(int)})
		}
		return out
	}
	in := planInput{Now: now, Free: 64, Workers: 64, PerWebhook: 16, CanSpill: true}
	limits := func(free, workers int) planInput { p := in; p.Free, p.Workers = free, workers; return p }

	cases := []struct {
		name  string
		hooks []*webhook
		in    planInput
		want  roundPlan
	}{
		{
			name:  "a due webhook gets its free window",
			hooks: []*webhook{hook("a", 8, 3, true)},
			in:    in,
			want:  roundPlan{Claim: slots("a", 5), Wait: noWorkKnown},
		},
		{
			name:  "nothing due: nothing to do and no wait known",
			hooks: []*webhook{with(hook("a", 8, 0, true), func(w *webhook) { w.due = false })},
			in:    in,
			want:  roundPlan{Wait: noWorkKnown},
		},
		{
			name: "resting after a timeout: nothing for it until the rest ends, and no backlog",
			hooks: []*webhook{
				with(hook("a", 1, 0, false), func(w *webhook) { w.restUntil = ms + 120 }),
				with(hook("b", 8, 0, true), func(w *webhook) { w.dueAt = ms + 400 }),
			},
			in:   in,
			want: roundPlan{Wait: 120 * time.Millisecond},
		},
		{
			name:  "a rest that has ended: the webhook sends again",
			hooks: []*webhook{with(hook("a", 1, 0, false), func(w *webhook) { w.restUntil = ms })},
			in:    in,
			want:  roundPlan{Claim: slots("a", 1), Wait: noWorkKnown},
		},
		{
			name: "not yet due: the wait is until the earliest due time",
			hooks: []*webhook{
				with(hook("a", 8, 0, true), func(w *webhook) { w.dueAt = ms + 1500 }),
				with(hook("b", 8, 0, true), func(w *webhook) { w.dueAt = ms + 250 }),
			},
			in:   in,
			want: roundPlan{Wait: 250 * time.Millisecond},
		},
		{
			name: "window full or nearly full: no slot",
			hooks: []*webhook{
				hook("full", 8, 8, true),
				hook("nearly", 16, 15, true), // 1 free of 16: wait to claim several at once
				hook("idle-small", 1, 0, true),
			},
			in:   func() planInput { p := in; p.CanSpill = false; return p }(),
			want: roundPlan{Claim: slots("idle-small", 1), Wait: noWorkKnown},
		},
		{
			name: "window full: due work without a slot is a backlog",
			hooks: []*webhook{
				hook("full", 8, 8, true),
				with(hook("known", 8, 8, true), func(w *webhook) { w.backlogSince = now.Add(-time.Millisecond) }),
			},
			in:   in,
			want: roundPlan{Backlogged: []string{"full"}, Wait: noWorkKnown},
		},
		{
			name:  "the per-webhook limit caps a window",
			hooks: []*webhook{hook("a", 32, 0, true)},
			in:    in,
			want:  roundPlan{Claim: slots("a", 16), Wait: noWorkKnown},
		},
		{
			name:  "global slots exhausted: nothing is claimed, and backlogs wait for a free slot",
			hooks: []*webhook{hook("a", 8, 0, true), hook("b", 8, 0, false)},
			in:    limits(0, 64),
			want:  roundPlan{Wait: noWorkKnown},
		},
		{
			name:  "few global slots: taken in order, and whoever gets none is backlogged",
			hooks: []*webhook{hook("a", 8, 0, true), hook("b", 8, 0, true), hook("c", 8, 0, true)},
			in:    limits(10, 64),
			want:  roundPlan{Claim: slots("a", 8, "b", 2), Backlogged: []string{"c"}, Wait: noWorkKnown},
		},
		{
			name: "fairness: proven webhooks first, then one request for each idle unproven one",
			hooks: []*webhook{
				hook("new", 4, 0, false),
				hook("healthy", 8, 0, true),
				hook("dead", 4, 0, false),
			},
			in:   limits(10, 64),
			want: roundPlan{Claim: slots("healthy", 8, "new", 1, "dead", 1), Wait: noWorkKnown},
		},
		{
			name: "fairness: unproven webhooks share half the workers, fewest in flight first",
			hooks: []*webhook{
				hook("dead", 16, 10, false), // 10 of the 32 shared slots already held
				hook("busy", 16, 4, false),
				hook("idle", 16, 0, false),
			},
			in: limits(40, 64),
			// probation 32-14 = 18: idle gets its one, then idle 15 more, then busy 2.
			want: roundPlan{Claim: slots("idle", 16, "busy", 2), Backlogged: []string{"dead"}, Wait: noWorkKnown},
		},
		{
			name: "fairness: an idle unproven webhook gets one request even when the shared half is spent",
			hooks: []*webhook{
				hook("dead", 16, 16, false), // the whole shared half of 32 workers
				hook("idle", 16, 0, false),
			},
			in:   limits(16, 32),
			want: roundPlan{Claim: slots("idle", 1), Backlogged: []string{"dead"}, Wait: noWorkKnown},
		},
		{
			name: "backlog long enough to spill",
			hooks: []*webhook{
				with(hook("long", 8, 8, true), func(w *webhook) { w.backlogSince = now.Add(-spillAfter) }),
				with(hook("short", 8, 8, true), func(w *webhook) { w.backlogSince = now.Add(-spillAfter + time.Millisecond) }),
				with(hook("stalled", 8, 8, true), func(w *webhook) {
					w.backlogSince = now.Add(-time.Millisecond)
					w.sendingSince, w.lastAnswer = now.Add(-stallAfter), now.Add(-stallAfter)
				}),
				with(hook("already", 8, 8, true), func(w *webhook) { w.backlogSince, w.spilled = now.Add(-time.Hour), true }),
				// In flight for as long, but waiting for the claim's reads, not for the
				// receiver: its last request came back just now, and nothing is on the wire.
				with(hook("reading", 8, 8, true), func(w *webhook) {
					w.backlogSince = now.Add(-time.Millisecond)
					w.sending, w.sendingSince, w.lastAnswer = 0, now.Add(-time.Hour), now.Add(-stallAfter)
				}),
			},
			in:   in,
			want: roundPlan{Spill: []string{"long", "stalled"}, Wait: noWorkKnown},
		},
		{
			name: "no spill where the store cannot spill",
			hooks: []*webhook{
				with(hook("long", 8, 8, true), func(w *webhook) { w.backlogSince = now.Add(-time.Hour) }),
			},
			in:   func() planInput { p := in; p.CanSpill = false; return p }(),
			want: roundPlan{Wait: noWorkKnown},
		},
		{
			name: "spilled webhook with ready work: ready first, the rest claimed",
			hooks: []*webhook{
				with(hook("some", 8, 0, true), func(w *webhook) { w.spilled, w.ready = true, make([]*models.Delivery, 3) }),
				with(hook("lots", 8, 0, true), func(w *webhook) { w.spilled, w.ready = true, make([]*models.Delivery, 20) }),
			},
			in:   in,
			want: roundPlan{Ready: slots("some", 3, "lots", 8), Claim: slots("some", 5), Wait: noWorkKnown},
		},
		{
			name: "spilled webhook whose take is under way: skipped until the take brings work",
			hooks: []*webhook{
				with(hook("taking", 8, 0, true), func(w *webhook) { w.spilled, w.taking = true, true }),
				with(hook("brought", 8, 0, true), func(w *webhook) {
					w.spilled, w.taking, w.ready = true, true, make([]*models.Delivery, 2)
				}),
			},
			in:   in,
			want: roundPlan{Ready: slots("brought", 2), Claim: slots("brought", 6), Wait: noWorkKnown},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(c.hooks)
			got := plan(c.hooks, c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("plan:\n got  %+v\n want %+v", got, c.want)
			}
			if after := snapshot(c.hooks); !reflect.DeepEqual(before, after) {
				t.Error("plan changed the states it was given")
			}
		})
	}
}

// snapshot copies webhook states, to tell whether something changed them.
func snapshot(hooks []*webhook) []webhook {
	out := make([]webhook, len(hooks))
	for i, w := range hooks {
		out[i] = *w
	}
	return out
}
