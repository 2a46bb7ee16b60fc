// Package raftlease holds the shared vocabulary of the raftlease lease store:
// the Lease, the Store interface that every backend implements, watch Events,
// the errors every backend returns, input limits, and the Clock abstraction.
//
// # The lease model
//
// A lease is a named, time-limited claim held by one holder. Every successful
// acquisition by a new holder is issued a fencing token strictly greater than
// every token issued before it for that name, across leader changes, restarts,
// snapshot restore and migration. A renewal keeps the token. Downstream
// systems reject writes that carry a token lower than the highest they have
// seen, so a paused or partitioned former holder cannot corrupt them.
//
// Deadlines are points on a consensus clock agreed through the replicated log
// (see DESIGN.md, "Time"), never wall-clock instants compared across
// machines. Safety depends only on a bound on clock rate drift.
//
// # Implementations
//
// Four stores implement Store: the in-process store (package memstore), the
// embedded Raft node (package cluster), the HTTP client of a leasenode cluster
// (package client) and the Redis bridge (package redisbridge). All of them
// pass the conformance suite in testutil/storetest, and all of them return the
// errors defined here so callers can switch backends without changing error
// handling.
//
// This package imports only the standard library.
package raftlease
