// Package client is the Go client of a leasenode cluster: a
// raftlease.Store (and a transport.Backend) over the cluster's HTTP API,
// so the elector, the conformance suite and your code run on a remote
// cluster exactly as on an embedded node.
//
//	c, err := client.New(client.Options{Endpoints: []string{"10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"}})
//	...
//	defer c.Close()
//	e, err := elector.New(c, opts)
//
// # Errors
//
// Errors match the same root sentinels and types as the embedded store's:
// errors.Is(err, raftlease.ErrLeaseHeld) with errors.As into a
// *raftlease.HeldError carrying the current lease, ErrNotHolder,
// ErrNotFound, ErrInvalidArgument (with *raftlease.FieldError for one bad
// field), and for unavailability a *raftlease.UnavailableError whose
// Outcome says whether the request may have taken effect. The server's
// error body is rebuilt with transport.ErrorJSON.Err, the one error table
// shared with the server. Input is validated locally first, with the
// same limits, so invalid requests never leave the process.
//
// A connection failure is a *raftlease.UnavailableError too. Its outcome
// is not_applied only when the request certainly never reached a server:
// its headers were never written (the connection or its TLS handshake
// failed, or did not finish before the deadline). A reset, an EOF or a
// timeout after the request was sent is outcome unknown.
//
// # Retries and endpoints
//
// The client prefers the endpoint that answered last. A retryable failure
// (raftlease.IsRetryable) is retried on the next endpoint with capped
// exponential backoff and jitter, until the caller's ctx ends (or
// Options.OperationTimeout, when the ctx has no deadline). It retries
// failures with outcome unknown as well as not_applied ones, because every
// call it makes is a read or idempotent for the same caller: an acquire or
// renew that had applied succeeds again with the same token. A release is
// the exception the Store contract allows: when the first attempt had in
// fact released the lease, the retry reports raftlease.ErrNotHolder. When
// any attempt may have applied, the error finally returned says outcome
// unknown even if the last attempt did not reach a server.
//
// Any node serves any request (followers forward to the leader). When a
// Status answer names a leader whose API address is one of the endpoints,
// the client prefers it from then on, saving the forwarding hop; a
// not_leader answer naming a member Status has told it about does the
// same. Following is an optimisation only.
//
// Each attempt is bounded by Options.RequestTimeout, and asks the server
// (?timeout=) to give up slightly earlier, so that a cluster without a
// quorum still answers with a proper 503 and its outcome rather than a
// client-side timeout.
//
// # Watch
//
// Watch runs the blocking query GET /v1/events in a loop, each query from
// the revision the previous answer reached (30 s waits, shortened by the
// server's MaxWait). A failed query is retried on another endpoint from
// the same revision: revisions are Raft log indexes, the same on every
// node, so a failover neither skips nor repeats an event.
//
// # Goroutines
//
// One per open watch, started by Watch, ended when its ctx ends, when the
// server reports compaction, or by Close, which waits for all of them.
// Requests run in the caller's goroutine (plus net/http's connection
// goroutines, which Close releases with the idle connections of the
// client's own transport).
package client
