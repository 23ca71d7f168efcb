package api

// The general information of the OpenAPI document. internal/openapigen reads this file as
// swag's main API file; every handler in this package documents its own operation.

//go:generate go run ../internal/openapigen -root ..

//	@title			Hookrelay API
//	@version		1.0.0
//	@description	Hookrelay sends a signed HTTP POST to every webhook that subscribes to a live-chat event (`conversation.started`, `message.received`). With this API you register webhooks, publish events, follow every delivery attempt, and capture deliveries in the built-in inspector.
//	@description
//	@description	**Try it out.** Logged in to the admin UI in this browser, requests from this page use your session; otherwise press **Authorize** and paste the admin token or an API key. `POST /api/v1/events` is prefilled with a sample event of each type: open it and press **Execute** to publish one.
//	@description
//	@description	**Authentication.** Everything under `/api/v1` except logging in (`POST /api/v1/session`) and the session probe needs `Authorization: Bearer <token>`, where the token is the admin token printed at first start or an API key. The admin UI uses the session cookie set by `POST /api/v1/session` instead; requests that change state with the cookie must also send `X-Requested-With`.
//	@description
//	@description	**What a receiver gets.** A POST whose JSON body has exactly the keys `event`, `timestamp` and `data`, in that order, with every field of the event type present (`null` where unknown; see `GET /api/v1/event-types`), and the headers `X-Webhook-Event`, `X-Webhook-Timestamp`, `X-Webhook-Signature` (the lowercase hex HMAC-SHA256 of the raw body, keyed with the webhook's secret), `X-Webhook-Id` (the same on every retry: deduplicate on it), `X-Webhook-Attempt`, and the Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`. A 2xx answer within the server's delivery timeout is a success; anything else is retried on the server's retry schedule, and `410 Gone` disables the webhook. `GET /api/v1/settings` tells this server's timeout and schedule.
//	@description
//	@description	**Errors** are RFC 9457 `application/problem+json` documents: `type`, `title`, `status`, `detail`, and `errors` naming each invalid field.
//	@description
//	@description	**Lists** answer `{"data": [...], "next_cursor": "..."}`; pass `next_cursor` back as `?cursor=` for the next page, with `?limit=` from 1 to 200 (default 50). `next_cursor` is null on the last page.

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
//	@tag.name			settings
//	@tag.description	The settings this server runs with, as its flags set them.
//	@tag.name			session
//	@tag.description	Log the admin UI in and out with a session cookie.
//	@tag.name			health
//	@tag.description	Liveness and readiness probes.
//	@tag.name			docs
//	@tag.description	This document and its interactive viewer.
//	@tag.name			receiver
//	@tag.description	An inspector bin's public URL, `/inspect/{id}` (and any sub-path), which webhook senders call: any method, no authentication. It captures the request for the bin's live view and answers with the bin's configured response. Listed last: it is what a sender calls, not part of the admin API.
