// Package jepsen is raftlease's fault-injection harness: it runs real
// leasenode processes, drives the lease-register and elector workloads
// against them, injects the faults of a seeded nemesis schedule, records
// one history and checks it. docs/reliability.md describes the design,
// the workloads, the nemeses and the precise definition of each checker.
//
// This package ties the parts together; each lives in a subpackage:
//
//   - history: the record of a run (history.jsonl), its CLOCK_MONOTONIC
//     clock, a concurrency-safe Recorder, the reader, and a RecordingStore
//     that records every call a participant makes;
//   - checker: linearizability (porcupine) and the safety and liveness
//     checkers, each returning a Verdict; recovery-time distributions;
//   - fenced: the fenced register the harness serves to participants;
//   - nemesis: the seeded schedule generator, the Nemesis interface the
//     process driver implements, and the Player that executes a schedule;
//   - report: results.json, timeline.html and the one-line summary.
//
// A run directory holds history.jsonl (plus history-<id>.jsonl from each
// participant process), schedule.json, logs/*.log, and the report files
// written by Report: results.json, timeline.html and
// linearizability.html. Check replays a run directory offline and writes
// the same report again, so `check DIR` reproduces the online verdicts
// from the files alone.
//
// # Goroutines
//
// None of its own; see the subpackages.
package jepsen
