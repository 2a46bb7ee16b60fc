// Package fenced is the fenced register the harness serves to elector
// participants: a resource a leader writes to, which accepts a fenced
// write only when its token is at least the highest it has accepted, as a
// downstream system guarded by elector.Fence or a token column would. It
// also takes unfenced control writes, always accepted, so the report can
// show what would have happened without fencing.
//
// The register records every write, accepted or not, into the run's
// history (history.FencedWrite) in the order it decided them.
//
// API (JSON over HTTP, loopback):
//
//	POST /write {"writer":"p1","token":7,"fenced":true,"seq":42}
//	→ 200 {"accepted":true,"index":12,"highest":7}
//
// A rejected write is a 200 with "accepted":false: the register answered;
// the write was stale. Malformed requests get 400 and are not recorded.
//
// # Goroutines
//
// Server runs net/http's accept loop on one goroutine it starts in Listen
// and waits for in Close; net/http serves each connection on its own.
// Register holds one mutex across each decision and its recording.
package fenced
