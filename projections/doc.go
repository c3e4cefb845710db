// Package projections builds and serves Metachat's Postgres read models from the event stream.
//
// JetStream is the only source of truth; every table here is derived from it and can be rebuilt
// from it at any time.
//
// # Projections and generations
//
// A Projection owns one read model: it creates its tables (Setup) and folds events into them
// (Apply). Each generation of a projection lives in its own Postgres schema rm_<name>_g<N>. For
// every table of the active generation a view public.<table> (WITH security_invoker) points at it,
// so readers query "tenants" and never know the generation. Rebuild replays the whole stream into
// generation N+1 beside the live one, then switches the views, the generation states and a
// notification in one transaction (blue/green). The bookkeeping is in the tables
// projection_generations and projection_checkpoints (package migrations).
//
// # Roles and row-level security
//
// Migrations run as the database owner, which owns every table. At run time nothing uses the owner
// except DDL (Setup, switching, dropping): OpenPools returns an app pool whose every connection ran
// SET ROLE metachat_app once in AfterConnect (a connection of that pool is permanently
// metachat_app), and a projector pool that is permanently metachat_projector. Neither role owns a
// table nor bypasses row-level security.
//
// Every read-model table carries tenant_id uuid NOT NULL and has row-level security enabled and
// forced (EnableTenantRLS; the Manager refuses a generation whose tables do not). metachat_app sees
// only the rows of the tenant its transaction set with set_config('app.tenant_id', $1, true) —
// WithTenant does that, never a session-level SET, so a pooled connection carries no tenant from
// one transaction into the next; with no tenant set it sees nothing. metachat_projector has a
// policy allowing every row because projectors write for all tenants.
//
// # Runners, checkpoints and acknowledgements
//
// A Runner consumes the stream for one projection generation through a durable pull consumer
// proj_<name>_g<N> and applies each fetched batch in one transaction that locks the checkpoint row,
// skips events at or below the checkpoint, applies the rest in order, moves the checkpoint and
// sends pg_notify('metachat_checkpoint', '<name>:<gen>:<seq>'). Only after the commit does it
// acknowledge, so a crash anywhere leads to redelivery, and redelivered events at or below the
// checkpoint are skipped: the checkpoint, not the consumer, decides what was applied.
//
// The consumer uses AckAll, and the runner acknowledges a batch with one acknowledgement of its
// last message, not waited for. Events are applied strictly in order by a single runner, so
// "everything up to here" is exactly what the checkpoint says, and a lost acknowledgement only
// means a harmless redelivery. The runner consumes with a subscription that keeps up to a batch
// buffered ahead of it, so the next batch is there when the last one commits.
//
// Batch transactions commit with synchronous_commit off: a Postgres crash can lose only the last
// commits, each with its checkpoint; the consumer has then acknowledged past the checkpoint and is
// recreated at it, and the events are applied again.
//
// A Selective projection names the aggregate types it applies, and its consumer filters on their
// subjects on the server: it never receives another aggregate's event, its checkpoint is its last
// own event, and its lag counts its own events. A projection that is not Selective consumes the
// whole stream and applies every event. Either way every delivered event is the projection's.
//
// A BatchQueuer projection (conversations) has a batch it can queue sent to Postgres as one
// pipeline: BEGIN, its statements, the checkpoint update, the notification and COMMIT. Checks that
// must hold fail in Postgres (public.metachat_check), before the COMMIT of the same pipeline.
//
// A session-level advisory lock per projection generation, held on a dedicated connection while the
// runner runs, makes sure only one runner per generation works at a time across processes; others
// wait on it as hot standbys and take over when the holder's session ends (failover).
//
// An event a projection cannot decode or apply stops that projection visibly: the transaction rolls
// back, the events before it in the batch are committed alone, the checkpoint row records
// stopped_at, stop_error and stop_seq, an error is logged, Status reports it, and the runner returns
// a *StoppedError instead of skipping the event or retrying it in a loop. A runner started again
// (fixed code, or Manager.Resume) continues at exactly that event.
//
// # Rebuild and switch
//
// Manager.Rebuild (typically from the CLI, while servers run Manager.Run) takes a per-projection
// advisory lock so rebuilds never overlap, creates generation N+1 in state building (schema,
// Setup, grants, checkpoint 0, consumer from sequence 1), notes the stream's last sequence T and
// runs a runner for N+1 until its checkpoint reaches T or its consumer has none of its events
// pending, reporting progress. It then stops that
// runner and, in one owner transaction under the projection's generations lock, drops the public
// views of generation N, creates them on N+1, marks N retired and N+1 active and sends
// pg_notify('metachat_projection_switch', '<name>:<N+1>'). Readers block for the instant the views
// are swapped and then resolve the new views; they never see a missing or half-built read model.
// Every Manager.Run listening on that channel (and re-checking periodically in case it missed the
// notification) cancels its runner of N and starts one of N+1, which takes over the consumer at
// N+1's checkpoint and applies what was appended since T. Waiters switch to N+1's checkpoint on
// the same notification. Manager.DropRetired later takes each retired generation's runner lock
// (waiting for any process still running it), deletes its consumer and drops its schema.
//
// The app pool caches prepared statements: a query whose result columns change type between two
// generations fails once per connection after the switch ("cached plan must not change result
// type"), after which pgx has re-prepared it. Queries should name their columns.
//
// # Read-your-writes
//
// A Waiter listens to the checkpoint and switch notifications on one connection and lets a request
// wait until the active generation of a projection has applied a given stream sequence.
package projections
