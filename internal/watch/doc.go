// Package watch fans lease change events out to watchers. The in-process
// store (memstore) and the Raft node (cluster) each own one Hub: their apply
// path calls Publish with every applied revision and its events, and their
// Watch method is Hub.Subscribe.
//
// The apply path must never wait for a watcher (STYLE.md rule 16), so
// Publish only appends to a bounded ring of recent events under a mutex and
// wakes the subscribers; each subscriber has its own goroutine that copies
// what it needs out of the ring and does the blocking send into its bounded
// channel. A consumer that falls behind by more than the ring holds is not
// waited for: it receives an EventCompacted event and its channel closes,
// after which it re-reads with List and watches again from the revision List
// reported, plus one.
//
// # Invariants
//
//   - Revisions never decrease across Publish and Reset calls. Every event in
//     the ring carries the revision it was published with, so the ring is
//     sorted by revision.
//   - oldest is the oldest revision whose events are all in the ring: every
//     published event with revision >= oldest is retained. When the ring
//     overwrites an event of revision r, oldest becomes at least r+1, since r
//     is no longer complete. Revisions without events are always covered.
//     Reset(rev) empties the ring and sets oldest to rev+1.
//   - A Subscribe from revision f > 0 is accepted only when f >= oldest; its
//     cursor starts at the first retained event with revision >= f, so the
//     subscriber delivers exactly the events with revision >= f that it
//     selects, in order, with neither gaps nor duplicates, until it is closed
//     or compacted. A subscriber whose cursor falls behind the ring's tail,
//     or whose generation predates a Reset, delivers EventCompacted carrying
//     oldest and closes, so it never silently skips an event.
//   - Subscribers receive copies of the events; they share no memory with
//     each other or with the ring, except Lease.Metadata maps, which are
//     read-only by contract.
//   - The lock is held for O(events published) by Publish and for at most
//     scanLimit ring entries by a subscriber; nobody sends on a channel or
//     waits while holding it.
//
// # Goroutines
//
//   - The caller's apply goroutine runs Publish and Reset; they never block
//     except briefly on the mutex.
//   - One goroutine per open subscription (Hub.serve), started by Subscribe
//     and tracked by the hub's WaitGroup. It is the only sender on, and the
//     closer of, its channel. It waits on the wake channel (closed and
//     replaced by Publish and Reset), the subscription's ctx and the hub's
//     done channel, so it ends when ctx ends, when the hub closes, or after
//     it has delivered (or failed to deliver) EventCompacted. Close waits
//     for all of them; NewHub starts none.
package watch
