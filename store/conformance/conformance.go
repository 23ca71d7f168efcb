// Package conformance is the one behaviour suite every store driver runs: what Hookrelay
// relies on of webhooks, events and the publish transaction, claims and leases, recorded
// attempts, captures, keys and sessions, retention, replicas and migrations, whatever the
// database. Each driver's package calls Run from a test with a Backend that opens it; what
// only one driver does (how a spill's taken events become owed again when their taker goes
// away, the group commit's cancellation, the checkpointer, array inserts) is tested in that
// driver's package.
//
// The cases are plain functions of one concern per file, so a failing case names its
// concern: migrations.go, webhooks.go, events.go, claims.go, leases.go, attempts.go, captures.go,
// auth.go, retention.go, replicas.go, spill.go, takes.go, provenance.go.
package conformance

import (
	"testing"

	"github.com/hookrelay/hookrelay/store"
)

// Backend opens one driver for the suite.
type Backend struct {
	// Name is "sqlite" or "postgres": the few cases whose expectations differ by database
	// (a migration's column types, replicas, leases for spilled webhooks) read it.
	Name string
	// DSN returns a new, empty database for one test, removed at the end of the test.
	DSN func(t testing.TB) string
	// Open opens the driver on dsn as a store, closed at the end of the test. A case may open
	// one database more than once (a restart, or a second replica).
	Open func(t testing.TB, dsn string) *store.Store
}

// cases are the suite, by name.
var cases = []struct {
	name string
	run  func(t *testing.T, b Backend)
}{
	{"MigrationsApplyOnceAndReopen", testMigrationsApplyOnceAndReopen},
	{"ActivityMigrationRollsUpStoredAttempts", testActivityMigrationRollsUpStoredAttempts},
	{"AttemptsMigrationKeepsStoredAttempts", testAttemptsMigrationKeepsStoredAttempts},
	{"ModifyWebhookSavesOnlyWhatChangeAccepts", testModifyWebhookSavesOnlyWhatChangeAccepts},
	{"DeleteWebhookRemovesDeliveriesAndAttempts", testDeleteWebhookRemovesDeliveriesAndAttempts},
	{"WebhooksToSendSeeEveryChange", testWebhooksToSendSeeEveryChange},
	{"PendingRotationSurvivesARestart", testPendingRotationSurvivesARestart},
	{"WebhookActivityCountsAttemptsPerHour", testWebhookActivityCountsAttemptsPerHour},
	{"WebhookActivityOfOneRecordSpansWebhooksAndHours", testWebhookActivityOfOneRecordSpansWebhooksAndHours},
	{"PublishFansOutToEnabledSubscribersOnly", testPublishFansOutToEnabledSubscribersOnly},
	{"IdempotencyKeyReplaysAndRefusesOtherContent", testIdempotencyKeyReplaysAndRefusesOtherContent},
	{"ConcurrentPublishesWithOneIdempotencyKeyMakeOneEvent", testConcurrentPublishesWithOneIdempotencyKeyMakeOneEvent},
	{"PublishOneGivesEachConcurrentRequestItsOwnOutcome", testPublishOneGivesEachConcurrentRequestItsOwnOutcome},
	{"QueueReplayWalksEveryMatchingEventInBatches", testQueueReplayWalksEveryMatchingEventInBatches},
	{"QueueReplayStopsWhenTheWebhookIsDisabled", testQueueReplayStopsWhenTheWebhookIsDisabled},
	{"ClaimForTakesAtMostTheFreeSlotsAndNeverALeasedDelivery", testClaimForTakesAtMostTheFreeSlotsAndNeverALeasedDelivery},
	{"PublishLeasesWhatTheLesseeGrants", testPublishLeasesWhatTheLesseeGrants},
	{"PublishLeasesASpilledWebhookWhatTheLesseeGrants", testPublishLeasesASpilledWebhookWhatTheLesseeGrants},
	{"ClaimForReportsWhenAWebhooksNextDeliveryIsDue", testClaimForReportsWhenAWebhooksNextDeliveryIsDue},
	{"ClaimForReachesAHealthyWebhookBehindAnotherWebhooksBacklog", testClaimForReachesAHealthyWebhookBehindAnotherWebhooksBacklog},
	{"RedeliveryOfADeliveryInFlightIsRefused", testRedeliveryOfADeliveryInFlightIsRefused},
	{"ConcurrentClaimForNeverSharesADelivery", testConcurrentClaimForNeverSharesADelivery},
	{"RecordResultsDoesNotReviveCancelledDelivery", testRecordResultsDoesNotReviveCancelledDelivery},
	{"RecordedAttemptsReadBackExactlyFromLargeMixedBatches", testRecordedAttemptsReadBackExactlyFromLargeMixedBatches},
	{"ConcurrentRecordsOfTheSameWebhooksDoNotDeadlock", testConcurrentRecordsOfTheSameWebhooksDoNotDeadlock},
	{"WebhookHealthFollowsEveryChangeOfOutcome", testWebhookHealthFollowsEveryChangeOfOutcome},
	{"BinStore", testBinStore},
	{"ConcurrentCapturesKeepTheirBinsBoundAndTheirOwnErrors", testConcurrentCapturesKeepTheirBinsBoundAndTheirOwnErrors},
	{"CapturesRacingTheirBinsDeletionLeaveNoneBehind", testCapturesRacingTheirBinsDeletionLeaveNoneBehind},
	{"BinReadsFollowChanges", testBinReadsFollowChanges},
	{"PruneDropsCapturesOlderThanRetention", testPruneDropsCapturesOlderThanRetention},
	{"BinBoundFollowsEveryDeletion", testBinBoundFollowsEveryDeletion},
	{"SessionsEndWithTheirCredential", testSessionsEndWithTheirCredential},
	{"LoginRacingRevocationLeavesNoSession", testLoginRacingRevocationLeavesNoSession},
	{"ReplayJobResumesWhereItStopped", testReplayJobResumesWhereItStopped},
	{"ReplayPeriodGoesByTheMillisecondOfEachEvent", testReplayPeriodGoesByTheMillisecondOfEachEvent},
	{"PruneKeepsPendingWork", testPruneKeepsPendingWork},
	{"PruneKeepsFinishedWorkNewerThanTheCutoff", testPruneKeepsFinishedWorkNewerThanTheCutoff},
	{"JobLockAdmitsOneReplicaAtATime", testJobLockAdmitsOneReplicaAtATime},
	{"NotifyReachesListeners", testNotifyReachesListeners},
	{"SpillSupported", testSpillSupported},
	{"SpilledWebhookOwesEventsAndTakesThemInOrderExactlyOnce", testSpilledWebhookOwesEventsAndTakesThemInOrderExactlyOnce},
	{"SpillTakesOnlyEventsTheWebhookSubscribesTo", testSpillTakesOnlyEventsTheWebhookSubscribesTo},
	{"SpillEndsWithTheWebhookAndKeepsOwedEventsFromPruning", testSpillEndsWithTheWebhookAndKeepsOwedEventsFromPruning},
	{"SpillSurvivesReopeningTheStore", testSpillSurvivesReopeningTheStore},
	{"PublishSpillsBackloggedWebhooksWhenADispatcherListens", testPublishSpillsBackloggedWebhooksWhenADispatcherListens},
	{"PublishSpillsByBacklogOnlyAtTheThresholdTheEngineGave", testPublishSpillsByBacklogOnlyAtTheThresholdTheEngineGave},
	{"PublishCountsOnlyDeliveriesDueForAWhileAsABacklog", testPublishCountsOnlyDeliveriesDueForAWhileAsABacklog},
	{"ReplaySkipsEventsTheSpillOwes", testReplaySkipsEventsTheSpillOwes},
	{"OwedDeliveriesAreListedCountedAndReadUnderTheirFutureIDs", testOwedDeliveriesAreListedCountedAndReadUnderTheirFutureIDs},
	{"ReplicasTakeEachOwedEventOnce", testReplicasTakeEachOwedEventOnce},
	{"TakenDeliveriesGetTheirRowWhenRecorded", testTakenDeliveriesGetTheirRowWhenRecorded},
	{"EventsTakenAgainAfterAnAbandonedRecordKeepOneRowEach", testEventsTakenAgainAfterAnAbandonedRecordKeepOneRowEach},
	{"TakenDeliveriesOfADisabledOrDeletedWebhook", testTakenDeliveriesOfADisabledOrDeletedWebhook},
	{"OneTakeServesSeveralWebhooks", testOneTakeServesSeveralWebhooks},
	{"AWebhookListedTwiceIsTakenOnce", testAWebhookListedTwiceIsTakenOnce},
	{"AttemptsKeepTheirFormatAndReplaysTheirJob", testAttemptsKeepTheirFormatAndReplaysTheirJob},
	{"EventDeliveryCountsByStatus", testEventDeliveryCountsByStatus},
	{"WebhookActivityCountsTestsApart", testWebhookActivityCountsTestsApart},
	{"CaptureKeepsItsAnswer", testCaptureKeepsItsAnswer},
	{"EventsKeepTheirTraceContext", testEventsKeepTheirTraceContext},
}

// Run runs every case of the suite against b, each as a subtest.
func Run(t *testing.T, b Backend) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

// Count is the number of cases Run runs.
func Count() int { return len(cases) }
