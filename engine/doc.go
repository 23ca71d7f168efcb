// Package engine is Hookrelay's queue engine: it claims due deliveries from the outbox, has
// delivery.Sender send them with a bounded number in flight, records every attempt and
// schedules retries. Read Dispatcher.Run → claimAndSend → attempt → recorder to follow one
// delivery.
//
// # States of a delivery
//
//	pending ──claim (lease)──▶ in flight ──2xx──────────────▶ delivered (succeeded)
//	   ▲                          │ ├──error, schedule left──▶ pending, due after the delay (retry)
//	   └──────────────────────────┘ └──error, schedule spent─▶ failed (410 Gone: at once)
//
// A claim leases a row to this process (Config.Lease); a publish may write its new rows
// leased to this process already, when the dispatcher has slots for them at once
// (lease.go), and they start without a claim. The recorder writes the attempt and the row's
// next state in one transaction. A process that dies mid-attempt leaves the lease
// to expire, and the delivery is attempted again: delivery is at least once. A webhook
// disabled or deleted under a claim has its delivery cancelled.
//
// A spilled webhook's new events get no row at publish: they wait in the webhook's spill (a
// stored position in the events), and are taken in order, a chunk at a time, into deliveries
// at their owed positions; each one's row is written once, in its final state, when its
// attempt is recorded.
//
// # Parts
//
// The Dispatcher keeps one webhook state per webhook in a table (webhook.go): its concurrency
// window and in-flight count, when it may next have due work, the hint sequence, since when
// it is backlogged, its spill, the ready work a take brought, and its rest after a timeout (a
// random part of a quarter of the timeout, so that endpoints that went dead together drift
// apart instead of costing a burst each timeout: restAfterTimeout). Each round the pure planner
// (planner.go) turns the states, the free global slots, the per-webhook limit and the time
// into what to start from ready work, what to claim, what to spill and what is now
// backlogged; the dispatcher applies it. Attempts run on goroutines that stay for the next
// attempt (senders.go), whose stacks have grown already. The recorder (recorder.go) batches
// results into RecordResults; the spiller (spill.go) runs the takes; the lessee (lease.go)
// grants a publish slots for the rows it writes leased.
//
// # Spill policy
//
// Both stores spill (Queue.SpillSupported): SQLite owes the events after a position in its
// events table, PostgreSQL lists each publish's owed events in one row. The policy and its thresholds are the engine's (spill.go); the store only applies them, in
// the publish transaction that would otherwise write the rows a spill saves. A webhook is
// spilled when either of two signs shows it falling behind:
//   - its backlog: spillDue deliveries pending (on PostgreSQL, due for spillAfter, or
//     spillPending pending at all; spillThreshold says why), which the engine hands the
//     store with Queue.SpillWhenPending and each publish checks once per spillDue rows it
//     wrote for the webhook, counting the rows of publishes still under way;
//   - its claims: due work that found no slot (backlogged) for spillAfter, or requests that
//     went out and stopped coming back (stalled: none of those on the wire answered for
//     stallAfter; claimed ones still waiting for their reads do not count), which the
//     planner sees and the engine asks for with Queue.RequestSpill.
//
// While spilled, the webhook's rows (retries, what was in flight) are claimed as usual; once
// none is due, a take brings up to takeFor owed events into its ready work, which the claim
// loop starts before claiming anything for it. The spill ends when a take finds nothing owed
// and nothing in flight. Where owed events are marked one by one (PostgreSQL), a spilled
// webhook that keeps up again (room in its window, no taken work waiting) is granted slots at
// publish like any other, so its new events get leased rows instead of being owed, and with
// the grant a take is asked for that ends the spill once what it owes is recorded: under a
// steady stream nothing owed would otherwise ever be out of flight. A spill that begins again
// within respillWithin of the last one's end gets no grants for a hold that doubles each time
// (startSpill), so a publisher outrunning its receivers does not flap between the two paths.
// Taken events that will not be recorded, and at shutdown those
// taken and not yet started, are abandoned (Queue.AbandonOwed): the store takes them again
// from the stored position, so nothing is lost and only what was in flight may be sent
// twice. (On PostgreSQL a take leases the owed
// rows it hands out; the next take of an abandoned webhook gives up this process's leases and
// takes the events again, and a replica that dies leaves them to the others when the leases
// run out.)
//
// # Ordered delivery per key (next)
//
// Ordered delivery per key (a conversation's events in order, different conversations in
// parallel, holding through retries, restarts and replicas) fits this queue as follows. The
// unit of order is the lane, (webhook, ordering key); unkeyed events stay one unordered
// queue per webhook. The engine's state stays per webhook, since the window measures the
// receiver, whatever the key. The head-of-line rule sits in the store's claim,
// not in memory, so that it holds across restarts and replicas: a keyed delivery is claimable
// only when no earlier delivery of its lane (by publish position) is pending, leased or
// waiting for a retry; a retry keeps its place at the head and holds the lane. The planner
// needs no new decision: a lane with its head in flight or waiting simply has nothing due,
// and the per-webhook window spreads slots over the lanes that do. The store must add the key
// on events and deliveries, an index on (webhook, key, position) for the head test in each
// driver's ClaimFor and PendingByWebhook, and a publish that writes keyed deliveries as rows
// even for a spilled webhook: a spill's single position cannot hold one lane back while
// taking another (a position per lane would be the later step).
package engine
