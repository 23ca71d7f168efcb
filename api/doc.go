package api

// The general information of the OpenAPI document. internal/openapigen reads this file as
// swag's main API file; every handler in this package documents its own operation.

//go:generate go run ../internal/openapigen -root ..

//	@title			Hookrelay API
//	@version		1.0.0
//	@description	Hookrelay sends signed webhooks for live-chat events. Register webhooks, publish events, follow every delivery attempt, and capture test deliveries in the built-in inspector.
//	@description
//	@description	**Authentication.** Everything under `/api/v1` except `POST /api/v1/session` needs `Authorization: Bearer <token>`, where the token is the admin token printed at first start or an API key. The admin UI uses the session cookie set by `POST /api/v1/session` instead; state-changing requests with the cookie must also send `X-Requested-With`.
//	@description
//	@description	**Errors** are RFC 9457 `application/problem+json` documents: `type`, `title`, `status`, `detail`, and `errors` naming each invalid field.
//	@description
//	@description	**Lists** answer `{"data": [...], "next_cursor": "..."}`; pass `next_cursor` back as `?cursor=` for the next page, with `?limit=` from 1 to 200 (default 50). `next_cursor` is null on the last page.
//	@description
//	@description	**Deliveries** are POST requests with a JSON body of fixed key order and the headers (`X-Webhook-Event`, `X-Webhook-Timestamp`, `X-Webhook-Signature` = hex HMAC-SHA256 of the body), plus `X-Webhook-Id`, `X-Webhook-Attempt` and the Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`.

//	@securityDefinitions.apikey	BearerAuth
//	@in							header
//	@name						Authorization
//	@description				The admin token printed at first start, or an API key, sent as `Authorization: Bearer <token>`.

//	@tag.name			webhooks
//	@tag.description	Endpoints that receive events: create, change, test, rotate secrets.
//	@tag.name			events
//	@tag.description	Publish chat events and browse what was published, with the event catalogue.
//	@tag.name			deliveries
//	@tag.description	One delivery per event and webhook, with every attempt; redeliver.
//	@tag.name			inspector
//	@tag.description	Built-in receiver bins that capture and verify test deliveries live.
//	@tag.name			changes
//	@tag.description	One WebSocket that tells admin pages what changed, so they follow the server live.
//	@tag.name			api-keys
//	@tag.description	Tokens for scripts and services; the token is shown once, on create.
//	@tag.name			session
//	@tag.description	Log the admin UI in and out with a session cookie.
//	@tag.name			health
//	@tag.description	Liveness and readiness probes.
//	@tag.name			docs
//	@tag.description	This document and its interactive viewer.
