// Package checker decides whether a recorded history is correct. Each
// checker takes a *history.History and returns a Verdict: whether the
// property held, the first violations with references to the records
// that show them, and counters. The definitions each checker implements
// are in docs/reliability.md and in the doc comment of its function.
//
// The checkers are deliberately independent: the porcupine-based
// Linearizability checker subsumes several of the others on the register
// workload, but the simpler ones name the broken property directly, cover
// the elector workload (whose leases expire) and stay cheap on histories
// porcupine cannot finish.
//
// Every checker is a pure function of its inputs: the same history gives
// the same verdict, online or replayed from disk.
//
// # Goroutines
//
// None of its own. Linearizability calls porcupine, which checks the
// partitions (one per lease name) on goroutines it starts and waits for.
package checker
