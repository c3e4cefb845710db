// Package app holds Metachat's application services: one file per use case (sign up, send a
// message, revoke an API key, …). A use case checks what the caller may do, runs commands through
// the event store's command handler, reads Postgres read models through row-level security, and
// waits for its own writes when a read must see them. Adapters (HTTP, websocket, WhatsApp) call
// these services, so every channel shares one implementation. It imports domain, eventstore and
// projections; adapters import it.
package app
