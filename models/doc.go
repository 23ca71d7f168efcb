// Package models is Hookrelay's domain: webhooks, events, deliveries and their attempts,
// inspector bins and captures, API keys and sessions; their validation; the event catalogue
// (types, JSON Schemas, samples) and the exact body bytes a receiver gets. It holds no SQL and
// depends on no other package of Hookrelay: the store persists these types, the delivery
// engine and the API work with them.
package models
