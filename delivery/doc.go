// Package delivery is the sending side of Hookrelay: the Sender signs and makes one attempt
// over its own HTTP/1 client (h1.go) behind the SSRF guard (guard.go), Decide applies the
// retry schedule to the response (retry.go), the payload is shaped for the webhook's format
// (format.go), and Metrics counts what happens. Package engine decides what to send and when.
package delivery
