// Package history is the harness's record of what happened: every lease
// operation a client invoked and how it completed, every nemesis step,
// every elector participant's gained/lost event, every write the fenced
// register received, node status samples and final node states.
//
// A run writes one history.jsonl per recording process: one JSON record
// per line, each with a "type" field (see Record). Every record carries
// CLOCK_MONOTONIC nanoseconds from Now, which is system-wide on Linux, so
// the files of the harness and of participant subprocesses on the same
// machine line up on one time axis. ReadDir merges them back into one
// History, which the checkers take; `check DIR` replays a run offline from
// these files alone.
//
// An operation is written twice: an "invoke" record when the client sends
// it and a "complete" record when it returns, so an operation still
// pending when the recorder stopped (or when the harness was killed) is
// visible as such and is modelled as ambiguous.
//
// # Goroutines
//
// None. A Recorder is safe for concurrent use; it serialises writes under
// one mutex and writes each record with a single Write call.
package history
