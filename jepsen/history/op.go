package history

import (
	"fmt"
	"time"
)

// Kind is the kind of a lease operation.
type Kind string

// The operation kinds of the lease-register and elector workloads.
const (
	Acquire Kind = "acquire"
	Renew   Kind = "renew"
	Release Kind = "release"
	Get     Kind = "get"
)

// IsWrite reports whether k changes the store (acquire, renew, release).
func (k Kind) IsWrite() bool { return k == Acquire || k == Renew || k == Release }

// Outcome classifies how an operation completed.
type Outcome string

// Outcomes. The zero value (Pending) means no completion was recorded.
const (
	// Pending: invoked, never completed (still running when the recorder
	// stopped, or the recording process died). Checkers treat it as
	// Ambiguous.
	Pending Outcome = ""
	// OK: the store answered with success; Lease holds the answer.
	OK Outcome = "ok"
	// Refused: the store answered with a definite refusal that changed
	// nothing: lease_held, not_holder or not_found (Code).
	Refused Outcome = "refused"
	// Ambiguous: the operation may or may not have taken effect: a timeout,
	// a connection reset after the request was sent, a 503 whose outcome is
	// unknown. Code says which.
	Ambiguous Outcome = "ambiguous"
	// Failed: the operation certainly did not take effect: a 503 with
	// outcome not_applied, or invalid input (4xx). Checkers drop it.
	Failed Outcome = "failed"
)

// Codes refine an Outcome. Refusal codes are the wire codes of
// transport/errors.go.
const (
	CodeLeaseHeld       = "lease_held"       // Refused: another holder has the lease
	CodeNotHolder       = "not_holder"       // Refused: renew/release by a non-holder or with a wrong token
	CodeNotFound        = "not_found"        // Refused: get of a free name
	CodeNotApplied      = "not_applied"      // Failed: 503 that was never proposed
	CodeInvalidArgument = "invalid_argument" // Failed: 4xx, bad input
	CodeTimeout         = "timeout"          // Ambiguous: the operation timeout or ctx ended
	CodeUnknown         = "unknown"          // Ambiguous: 503 with outcome unknown
	CodeError           = "error"            // Ambiguous: any other error (connection reset, EOF, 500)
)

// Workloads an operation belongs to. The linearizability checker takes
// only register operations: elector operations use short TTLs, so their
// leases expire, which the register model does not describe.
const (
	WorkloadRegister = "register"
	WorkloadElector  = "elector"
)

// LeaseResult is the part of a lease an operation returned: the lease on
// success, or the current lease carried by a lease_held refusal.
type LeaseResult struct {
	Holder   string `json:"holder"`
	Token    uint64 `json:"token"`
	Revision uint64 `json:"revision,omitempty"`
	TTLNs    int64  `json:"ttl_ns,omitempty"`
}

// Op is one lease operation: what was asked (invoke) and what came back
// (completion). Times are Now() readings in nanoseconds.
type Op struct {
	// Process is the client that issued the operation (a register client
	// id such as "c3", or a participant id). Each process issues one
	// operation at a time.
	Process string `json:"process"`
	// ID numbers the process's operations; (Process, ID) is unique in a
	// history.
	ID int64 `json:"id"`
	// Workload is WorkloadRegister or WorkloadElector.
	Workload string `json:"workload,omitempty"`
	// Node is the node the request was sent to ("" when the client chose).
	Node string `json:"node,omitempty"`

	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Holder is the requesting holder (acquire, renew, release).
	Holder string `json:"holder,omitempty"`
	// TTLNs is the requested TTL (acquire; renew when non-zero).
	TTLNs int64 `json:"ttl_ns,omitempty"`
	// Token is the token presented (renew, release).
	Token uint64 `json:"token,omitempty"`
	// Stale marks a get that allowed a stale local read.
	Stale bool `json:"stale,omitempty"`

	// Invoke is when the request was sent.
	Invoke int64 `json:"invoke_ns"`

	// The completion; zero values while Pending.
	Complete int64        `json:"complete_ns,omitempty"`
	Outcome  Outcome      `json:"outcome,omitempty"`
	Code     string       `json:"code,omitempty"`
	Lease    *LeaseResult `json:"lease,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// Ref names the operation in checker reports: "op c3#17".
func (o Op) Ref() string { return fmt.Sprintf("op %s#%d", o.Process, o.ID) }

// Pending reports whether no completion was recorded.
func (o Op) Pending() bool { return o.Outcome == Pending }

// MayHaveApplied reports whether the operation may have taken effect:
// it succeeded, or its outcome is ambiguous or pending, or it is a release
// refused not_holder. The Store contract allows that answer for a release
// that did take effect (a client retried it after an attempt whose outcome
// was unknown and found the lease already free), so it proves only that
// the holder does not hold the lease any more when it is answered.
func (o Op) MayHaveApplied() bool {
	return o.Outcome == OK || o.Outcome == Ambiguous || o.Outcome == Pending ||
		o.Kind == Release && o.Outcome == Refused && o.Code == CodeNotHolder
}

// Latency is Complete - Invoke, or 0 while pending.
func (o Op) Latency() time.Duration {
	if o.Pending() {
		return 0
	}
	return time.Duration(o.Complete - o.Invoke)
}

// TTL is the TTL that governs the lease after this operation: the
// requested TTL, or the TTL the answer carried (a renew that kept its TTL).
func (o Op) TTL() time.Duration {
	if o.TTLNs > 0 {
		return time.Duration(o.TTLNs)
	}
	if o.Lease != nil {
		return time.Duration(o.Lease.TTLNs)
	}
	return 0
}

func (o Op) String() string {
	in := ""
	switch o.Kind {
	case Acquire:
		in = fmt.Sprintf("%s(%s, %s)", o.Kind, o.Name, o.Holder)
	case Renew, Release:
		in = fmt.Sprintf("%s(%s, %s, %d)", o.Kind, o.Name, o.Holder, o.Token)
	default:
		in = fmt.Sprintf("%s(%s)", o.Kind, o.Name)
	}
	out := string(o.Outcome)
	if o.Pending() {
		out = "pending"
	}
	if o.Code != "" {
		out += " " + o.Code
	}
	if o.Lease != nil {
		out += fmt.Sprintf(" %s/%d", o.Lease.Holder, o.Lease.Token)
	}
	return fmt.Sprintf("%s %s -> %s", o.Ref(), in, out)
}
