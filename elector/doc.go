// Package elector runs leader election on any raftlease.Store: the embedded
// Raft node, a remote leasenode cluster through the client, the Redis
// bridge, or the in-process memstore. It imports nothing of raftlease but
// the root package.
//
// Every participant creates an Elector with the same lease Name and its own
// Holder id, and calls Start (or Run). An elector that does not lead
// campaigns with Store.Acquire; when another participant holds the lease it
// watches the name and campaigns again the moment the lease is released or
// expires, and polls in case the watch misses it: when the holder's lease is
// due to expire, but at least RetryInterval and at most LeaseDuration after
// the previous campaign. The leader renews every RenewInterval, retrying
// failed renewals every RetryInterval until its holder-side deadline. OnElected runs while this elector leads, with a context
// that ends when leadership ends. The fencing token (Token) goes with every
// write the leader makes; the resources it writes to check it with a Fence
// or an equivalent condition, so a former leader can do no harm.
//
// # Invariants
//
//   - Holder-side fencing (DESIGN.md, "Time" rule 4). For each successful
//     acquire or renewal the elector reads its Clock just before sending
//     the request, and may act as leader until
//     safe-until = send time + LeaseDuration×(1−MaxClockDrift) − SafetyMargin.
//     The store's deadline for the lease is at least send time +
//     LeaseDuration on a clock that runs at most MaxClockDrift apart, so
//     safe-until comes strictly before anyone else can be granted the
//     lease. When safe-until passes without a newer successful renewal, the
//     elector stops leading at once: IsLeader turns false, the leader
//     context is cancelled and a Lost change is emitted, whether or not the
//     store answers. Options.Validate refuses timings where a renewal cannot
//     land before safe-until.
//   - Tokens only grow. News about a token lower than one already seen for
//     the name (a late watch event, a late answer) is ignored.
//   - One term at a time. A term is one stretch of leadership; the leader
//     context belongs to it. OnElected calls never overlap: a new term's
//     OnElected starts only after the previous one returned.
//   - The elector never waits for its users: change channels are bounded
//     and drop their oldest entry when full, counting it in Change.Missed.
//   - Every store call is bounded by OperationTimeout, measured on the
//     elector's Clock.
//   - Nothing outlives Stop: it waits for every goroutine below.
//
// # Goroutines
//
// All goroutines are owned by the Elector and counted; Stop (or Close)
// waits until every one has returned.
//
//   - run: the caller of Run, or the goroutine Start creates to call it.
//     It is the only one that campaigns and renews on its own schedule.
//     It ends when Run's ctx ends or Stop is called, after cancelling the
//     leader context, waiting for the leader work, and releasing the lease
//     if ReleaseOnStop.
//   - watch: one per Run. Holds the store watch on the name, forwards its
//     events to run, and re-opens it after RetryInterval when it fails. It
//     ends with Run.
//   - watchdog: one per term. Sleeps on a Clock timer until the term's
//     safe-until and ends the term if no renewal moved it. It ends with the
//     term.
//   - leader work: one per term, only when OnElected or OnDemoted is set.
//     Waits for the previous term's leader work, calls OnElected with the
//     leader context, waits for that context to end, then calls OnDemoted.
//   - subscription: one per Subscribe. Closes the channel when the
//     subscriber's ctx ends or the elector stops.
//   - operation timer: one per store call when Options.Clock is not the
//     system clock, to cancel the call after OperationTimeout. The call's
//     caller waits for it before returning.
//
// TryAcquire, Release, Proclaim and Leader make their store calls on the
// caller's goroutine. State shared by these goroutines (the current term,
// the leader as last seen, subscribers, statistics) is guarded by one
// mutex that is never held across a store call or a callback.
package elector
