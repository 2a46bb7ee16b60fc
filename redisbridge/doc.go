// Package redisbridge is a raftlease.Store on Redis: the same API, errors and
// fencing tokens as the Raft-replicated store, on a standalone server,
// Sentinel or Redis Cluster, so that users can compare the two and migrate
// from one to the other (Export carries every name's fencing counter over as
// a token floor). docs/redis.md describes the key layout, the scripts, the
// watch modes and, above all, what Redis does not guarantee.
//
// # Invariants
//
//   - Acquire, Renew, Release and the recording of an expiry are each one
//     Lua script (EVALSHA, falling back to EVAL on NOSCRIPT), so the check
//     and the write cannot interleave with another client's. A script reads
//     and checks everything before its first write, because Redis does not
//     roll a failed script back; data the bridge did not write is refused
//     with an error matching ErrMalformed and left as it is.
//   - Tokens come from a per-name counter (INCR, raised first to the token
//     floor), never deleted, so a name's tokens only grow, as long as Redis
//     keeps its data. Renewals and re-acquisitions keep the token.
//   - Expiry is Redis's own (PEXPIREAT at the deadline, on the Redis server's
//     clock). Deadline and Remaining are on that clock.
//   - Every change gets the next value of the store's revision counter and
//     an entry in the store's event stream, in the same script, so revisions
//     order all changes of a store and watches deliver them without gaps,
//     across processes. Redis expiring a lease is recorded (an expired event
//     with its own revision) by the first client to notice it, or by the
//     next Acquire of the name, before that Acquire's own event.
//   - List reads the name index and then, in one script, the leases and the
//     revision at one instant; watching from its revision + 1 misses nothing.
//   - Invalid input is refused before any Redis call.
//
// # Goroutines
//
// New starts these, all owned by the Store and ended by Close, which waits
// for them:
//
//   - events loop: copies new entries of the event stream into the Store's
//     in-memory history (internal/watch.Hub), when a write announces itself
//     on the store's pub/sub channel, when this Store wrote, and every
//     PollInterval. It restarts the history (watches receive
//     EventCompacted) when the stream shows that events were lost.
//   - expiry loop: looks at the deadline index at the earliest deadline,
//     when woken (a write, a keyspace notification) and every PollInterval,
//     and records the expiry of leases Redis has expired.
//   - notify loop: one per pub/sub subscription (two on Cluster when
//     keyspace notifications are used): receives messages and wakes the
//     two loops above.
//   - watch: one per open Watch, run by the hub; it ends when the watch's
//     ctx ends or the Store closes.
//   - watch counter: one per open Watch, counting it as open until its ctx
//     ends or the Store closes. While no watch is open the events loop reads
//     the stream only every PollInterval, so writes cost one round trip.
package redisbridge
