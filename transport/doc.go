// Package transport is what crosses the wire between raftlease nodes and
// between clients and nodes: one multiplexed TCP port per node (optionally
// mutual TLS) carrying Raft and the forwarding RPC, a fault-injecting layer
// for tests, the error table, and the JSON wire types of the HTTP API.
//
// It imports only the root package, the standard library and hclog. It does
// not import hashicorp/raft: a *Layer has the Accept/Close/Addr of a
// net.Listener and Dial(address, timeout), and package cluster adapts it to
// raft.StreamLayer in a few lines.
//
// # Connections
//
// Listen binds one port and returns a *Mux. Each Kind (KindRaft,
// KindForward) gets a *Layer from Mux.Layer. Layer.Dial connects to another
// node's Mux (TLS handshake first, when configured) and writes a header
// before any payload:
//
//	byte 0     0xB1: a raftlease transport connection, header version 1
//	byte 1     the Kind
//	uvarint    length of the dialer's node id (at most MaxNodeIDLen)
//	bytes      the node id
//
// The Mux reads exactly these bytes, under Config.HandshakeTimeout, in a
// goroutine per incoming connection, so garbage or a silent peer never
// stalls the accept loop: a bad version byte, kind 0, an oversized id or
// the timeout closes the connection. A connection whose kind has no layer
// yet waits for Mux.Layer to create it until the same timeout, so a node
// may set its layers up one by one after Listen. Accepted connections are *Conn values;
// PeerID reports the id the dialer declared (asserted, not proven; with
// mutual TLS, Conn.ConnectionState has the verified certificate).
//
// With Config.TLS, every connection is TLS both ways; when ClientCAs is set
// the Mux requires and verifies client certificates. With TLS 1.3, a dialer
// without an acceptable certificate completes its own handshake, and then
// its first read fails (the server sends a certificate_required alert); the
// server never hands such a connection to a layer.
//
// # Forwarding RPC
//
// Serve answers requests on a listener (a Layer) with a Handler; a Client
// calls it, pooling connections per address. Each connection carries one
// request at a time, as frames of a 4-byte big-endian length and a payload
// of at most MaxFrameSize bytes:
//
//	request   0x01, uvarint timeout ms (0: none), uvarint len + method, body
//	response  0x00, body
//	          0x01, uvarint len + code, uvarint len + message, detail JSON
//
// An oversized or malformed frame closes the connection. The caller's ctx
// deadline travels as the timeout and bounds the handler's ctx. The code,
// message and detail of an error come from ErrorCode and DetailOf, and
// ErrorFromCode rebuilds the same root error on the caller's side. A
// transport failure is a *raftlease.UnavailableError whose Outcome is
// OutcomeNotApplied only when the request certainly never reached the
// handler (a frame cut short is never handled).
//
// # Errors and JSON
//
// ErrorCode is the single table from errors to wire codes and HTTP
// statuses, shared by the RPC and the HTTP API; ErrorFromCode and
// ErrorJSON.Err go back. Round-tripping any root sentinel or typed error
// keeps errors.Is (and errors.As for HeldError, NotLeaderError,
// UnavailableError and single FieldErrors) true. LeaseJSON, AcquireJSON,
// RenewJSON, ReleaseJSON, LeaseListJSON, EventJSON and ErrorJSON are the
// HTTP API's bodies; DecodeJSON reads one strictly. LeaseJSON carries its
// durations both in milliseconds (for people) and exactly in nanoseconds,
// so leases compare equal after a round trip (the conformance suite checks
// HeldError.Current and deadlines exactly).
//
// # HTTP API
//
// NewHandler serves any Backend (a *cluster.Node, `leasenode dev`'s store,
// or a *client.Client acting as a proxy) as the JSON API v1 that
// docs/api.md documents; the route table is at the top of http.go. Request
// bodies are decoded strictly (DecodeJSON), errors go through the one
// error table above, and every 503 carries the outcome. Blocking queries
// (GET /v1/leases/{name}?index=, GET /v1/events) hold one Backend.Watch for
// their duration, capped by HandlerOptions.MaxWait. Metrics (metrics.go)
// count requests by operation and code, time them, and read the node's
// Raft and store gauges from Backend.Status at scrape time. The handler
// starts no goroutines of its own beyond those of the watches it holds.
//
// # Fault injection
//
// A *Faults shared by the Configs of an in-process test cluster cuts,
// delays and drops traffic per directed link between node ids; see its doc
// for the exact semantics. In short: a cut link (from, to) refuses from's
// dials to `to`, closes every open connection between the two, and
// black-holes what `from` writes on connections `to` opens later; Heal
// closes those black holes so streams restart clean. Fault changes take
// effect before the call returns, and Faults.Stats counts their effects, so
// tests wait with require.Eventually rather than sleeps.
//
// # Goroutines
//
//   - Mux accept loop: one per Mux, from Listen to Close.
//   - Mux handshake: one per incoming connection, until the connection is
//     handed to its layer's Accept, rejected, or the Mux closes (at most
//     1024 at a time; beyond, new connections are closed at once).
//   - Server accept loop: one per Server; Server connection: one per
//     accepted connection, running the handler inline. Close ends them all,
//     after the running handlers return (their ctx is cancelled).
//   - Client idle watcher: one per pooled idle connection, blocked in a
//     read so a peer's close is noticed before reuse; it ends when the
//     connection is taken from the pool or closed. Client.Close waits.
//
// Faults has no goroutines: delays sleep in the writer's goroutine.
// Mux.Close, Server.Close and Client.Close are idempotent and wait for the
// goroutines they own.
package transport
