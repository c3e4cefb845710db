// Package eventstore implements domain.EventStore, Metachat's append-only log of events and its only
// source of truth, on NATS JetStream (JetStream) and in memory for tests (Memory). It also holds the
// generic command handler (Handler) that loads an aggregate, decides and appends with optimistic
// concurrency, and the conformance suite both stores pass (package storetest).
//
// # Stream and subjects
//
// Every event is one message in a single stream (default "METACHAT_EVENTS", file storage, kept
// forever, deletes and purges denied). Its subject names its aggregate, tenant first:
//
//	<prefix>.<tenant_id>.<aggregate_type>.<aggregate_id>
//	ev.0191b9a4-5c2e-7f00-8a1b-2c3d4e5f6a7b.tenant.0191b9a4-5c2e-7f00-8a1b-2c3d4e5f6a7b
//
// so one subject holds exactly one aggregate's history and a tenant's whole history is the filter
// "<prefix>.<tenant_id>.>". Each part is validated by domain.AggregateRef.Validate, which keeps
// dots and wildcards out of the tokens.
//
// # Versions and optimistic concurrency
//
// An event's Sequence is its stream sequence. An aggregate's version is the stream sequence of its
// last event (its last subject sequence), 0 when it has none. Versions therefore grow but are not
// contiguous per aggregate. Append sends the expected version as the
// Nats-Expected-Last-Subject-Sequence header of the first message: the server stores nothing when
// the aggregate's last sequence differs (expected 0 means the subject must have no message yet),
// which Append reports as a *domain.ConcurrencyError (ECONFLICT).
//
// # Atomic batches
//
// Several events appended together are one JetStream atomic batch (nats-server 2.12 or newer, so
// Open refuses older servers): the messages carry Nats-Batch-Id, Nats-Batch-Sequence 1..n and the
// last one Nats-Batch-Commit, and the server stores all of them, contiguously, or none. The expected
// version check applies to the whole batch.
//
// # Reads
//
// Load and Read use batched direct gets (up to 1000 messages a request, filtered by subject on
// the server), which are several times faster than an ordered consumer for a typical aggregate.
// With several replicas a direct get may be answered by a follower a little behind the leader, so
// before reporting the end of the events the store asks the stream leader for the next one: reads
// include every acknowledged append. Subscribe uses an ordered consumer.
//
// # De-duplication
//
// Each message's Nats-Msg-Id is its event ID, so an append retried after a lost acknowledgement
// is stored once: Append then returns AppendResult.Duplicate with the original sequences. The server
// remembers ids for the stream's duplicate window (default two minutes); a retried append is also
// recognised after the window, when the aggregate's events right after the expected version are
// the same event ids. A batch that contains an already stored id and is not such a retry is
// rejected whole (ECONFLICT).
package eventstore
