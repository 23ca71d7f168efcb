package store

import "github.com/hookrelay/hookrelay/store/storedriver"

// The values Hookrelay exchanges with a store, defined in storedriver so the drivers can
// use them too.
type (
	Backlog         = storedriver.Backlog
	ClaimForRequest = storedriver.ClaimForRequest
	DeliveryFilter  = storedriver.DeliveryFilter
	EventBody       = storedriver.EventBody
	WebhookQuota    = storedriver.WebhookQuota
	SpillThreshold  = storedriver.SpillThreshold
	PublishInput    = storedriver.PublishInput
	Published       = storedriver.Published
	QueueStats      = storedriver.QueueStats
	Queued          = storedriver.Queued
	Lessee          = storedriver.Lessee
	ReplayFilter    = storedriver.ReplayFilter
	Setting         = storedriver.Setting
	SpillTake       = storedriver.SpillTake
	TakeRequest     = storedriver.TakeRequest
	OwedQuota       = storedriver.OwedQuota
)

// Notification channels; see storedriver.
const (
	ChannelWake     = storedriver.ChannelWake
	ChannelCaptures = storedriver.ChannelCaptures
	ChannelChanges  = storedriver.ChannelChanges
)
