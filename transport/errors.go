package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/raftlease/raftlease"
)

// Error codes: the one table that maps raftlease errors to the wire and
// back, shared by the forwarding RPC and the HTTP API (STYLE rule 11).
const (
	CodeInvalidArgument = "invalid_argument" // 400, raftlease.ErrInvalidArgument
	CodeUnauthorized    = "unauthorized"     // 401, ErrUnauthorized
	CodeNotFound        = "not_found"        // 404, raftlease.ErrNotFound
	CodeLeaseHeld       = "lease_held"       // 409, *raftlease.HeldError
	CodeNotHolder       = "not_holder"       // 409, raftlease.ErrNotHolder
	CodeStaleToken      = "stale_token"      // 409, raftlease.ErrStaleToken
	CodeCompacted       = "compacted"        // 410, raftlease.ErrCompacted
	CodeNotLeader       = "not_leader"       // 503, raftlease.ErrNotLeader (*NotLeaderError)
	CodeNoQuorum        = "no_quorum"        // 503, raftlease.ErrNoQuorum
	CodeClosed          = "closed"           // 503, raftlease.ErrClosed
	CodeUnavailable     = "unavailable"      // 503, raftlease.ErrUnavailable
	CodeInternal        = "internal"         // 500, anything else
)

// ErrUnauthorized: the request carried no valid credentials. The HTTP API
// returns it; the root package has no sentinel for it yet.
var ErrUnauthorized = errors.New("raftlease: unauthorized")

// errorTable lists the codes in matching order: the first sentinel err
// matches decides its code, so the narrower kinds of unavailability come
// before ErrUnavailable itself.
var errorTable = []struct {
	code     string
	status   int
	sentinel error
}{
	{CodeInvalidArgument, http.StatusBadRequest, raftlease.ErrInvalidArgument},
	{CodeUnauthorized, http.StatusUnauthorized, ErrUnauthorized},
	{CodeNotFound, http.StatusNotFound, raftlease.ErrNotFound},
	{CodeLeaseHeld, http.StatusConflict, raftlease.ErrLeaseHeld},
	{CodeNotHolder, http.StatusConflict, raftlease.ErrNotHolder},
	{CodeStaleToken, http.StatusConflict, raftlease.ErrStaleToken},
	{CodeCompacted, http.StatusGone, raftlease.ErrCompacted},
	{CodeNotLeader, http.StatusServiceUnavailable, raftlease.ErrNotLeader},
	{CodeNoQuorum, http.StatusServiceUnavailable, raftlease.ErrNoQuorum},
	{CodeClosed, http.StatusServiceUnavailable, raftlease.ErrClosed},
	{CodeUnavailable, http.StatusServiceUnavailable, raftlease.ErrUnavailable},
}

// ErrorCode returns the wire code and HTTP status of err: ("", 200) for
// nil; the first matching entry of the table above; unavailable for a
// context error (the operation timed out or was abandoned, outcome
// unknown); internal (500) for anything else.
func ErrorCode(err error) (code string, httpStatus int) {
	if err == nil {
		return "", http.StatusOK
	}
	for _, e := range errorTable {
		if errors.Is(err, e.sentinel) {
			return e.code, e.status
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeUnavailable, http.StatusServiceUnavailable
	}
	return CodeInternal, http.StatusInternalServerError
}

// ErrorDetail is the structured part of an error on the wire, beside its
// code and message. Every field is optional.
type ErrorDetail struct {
	// Outcome, on 503 codes, says whether the request may have taken
	// effect: "not_applied" or "unknown" (raftlease.Outcome.String()).
	Outcome string `json:"outcome,omitempty"`
	// Lease, on lease_held, is the lease that another holder has.
	Lease *LeaseJSON `json:"lease,omitempty"`
	// LeaderID and LeaderAddr, on not_leader, name the leader when known.
	LeaderID   string `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_addr,omitempty"`
	// Field and Reason, on invalid_argument, name the one bad field.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Cause, on unavailable, says that a context ended the operation:
	// "deadline_exceeded" or "canceled".
	Cause string `json:"cause,omitempty"`
}

const (
	causeDeadline = "deadline_exceeded"
	causeCanceled = "canceled"
)

// DetailOf extracts the structured detail of err: the current lease of a
// *raftlease.HeldError, the outcome of an unavailable error (unknown when it
// carries none), the leader of a *raftlease.NotLeaderError, the field of an
// error that is exactly one *raftlease.FieldError, and whether a context
// deadline or cancellation caused an unavailable error.
func DetailOf(err error) ErrorDetail {
	var d ErrorDetail
	code, status := ErrorCode(err)
	var he *raftlease.HeldError
	if code == CodeLeaseHeld && errors.As(err, &he) {
		l := FromLease(he.Current)
		d.Lease = &l
	}
	if status == http.StatusServiceUnavailable {
		d.Outcome = raftlease.OutcomeOf(err).String()
	}
	var nl *raftlease.NotLeaderError
	if code == CodeNotLeader && errors.As(err, &nl) {
		d.LeaderID, d.LeaderAddr = nl.LeaderID, nl.LeaderAddr
	}
	if code == CodeUnavailable {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			d.Cause = causeDeadline
		case errors.Is(err, context.Canceled):
			d.Cause = causeCanceled
		}
	}
	var fe *raftlease.FieldError
	if code == CodeInvalidArgument && errors.As(err, &fe) && fe.Error() == err.Error() {
		d.Field, d.Reason = fe.Field, fe.Reason
	}
	return d
}

// marshalDetail encodes d, or returns nil when d is empty.
func marshalDetail(d ErrorDetail) []byte {
	if d == (ErrorDetail{}) {
		return nil
	}
	b, _ := json.Marshal(d)
	return b
}

// RemoteError is an error received from a peer, rebuilt by ErrorFromCode.
// Its message is the peer's, and it matches (through Err) the root error of
// its code, so errors.Is and errors.As work as on the peer.
type RemoteError struct {
	// Code is the wire code.
	Code string
	// Message is the peer's err.Error().
	Message string
	// Err is the root error the code stands for: a sentinel, or a typed
	// error rebuilt from the detail; nil for internal and unknown codes.
	Err error
}

func (e *RemoteError) Error() string { return e.Message }
func (e *RemoteError) Unwrap() error { return e.Err }

// ErrorFromCode rebuilds the error a peer encoded with ErrorCode, its
// message and its detail (the JSON of an ErrorDetail; empty or malformed
// detail is ignored). The result matches the same root errors as the
// original under errors.Is:
//
//   - lease_held: a *raftlease.HeldError carrying the detail's lease (when
//     the detail has none, a *RemoteError matching ErrLeaseHeld);
//   - invalid_argument with field detail: a *raftlease.FieldError;
//   - 503 codes (unavailable, not_leader, no_quorum, closed): a
//     *raftlease.UnavailableError with the detail's outcome (unknown when
//     absent) wrapping a *RemoteError; for not_leader that wraps a
//     *raftlease.NotLeaderError with the detail's leader; for unavailable
//     with a cause, context.DeadlineExceeded or context.Canceled. A remote
//     closed also matches ErrUnavailable, because it is the peer that
//     closed, not the caller's store;
//   - other known codes: a *RemoteError wrapping the code's sentinel;
//   - internal and unknown codes: a *RemoteError matching no sentinel.
func ErrorFromCode(code, message string, detail []byte) error {
	var d ErrorDetail
	if len(detail) > 0 {
		if err := json.Unmarshal(detail, &d); err != nil {
			d = ErrorDetail{}
		}
	}
	return errorFrom(code, message, d)
}

func errorFrom(code, message string, d ErrorDetail) error {
	var sentinel error
	for _, e := range errorTable {
		if e.code == code {
			sentinel = e.sentinel
		}
	}
	if message == "" {
		message = "raftlease: remote error " + code
		if sentinel != nil {
			message = sentinel.Error()
		}
	}
	switch code {
	case CodeLeaseHeld:
		if d.Lease != nil {
			return &raftlease.HeldError{Current: d.Lease.ToLease()}
		}
	case CodeInvalidArgument:
		if d.Field != "" {
			return &raftlease.FieldError{Field: d.Field, Reason: d.Reason}
		}
	case CodeNotLeader, CodeNoQuorum, CodeClosed, CodeUnavailable:
		outcome := raftlease.OutcomeUnknown
		if d.Outcome == raftlease.OutcomeNotApplied.String() {
			outcome = raftlease.OutcomeNotApplied
		}
		// UnavailableError appends the outcome itself.
		message = strings.TrimSuffix(message, " (outcome "+outcome.String()+")")
		cause := sentinel
		switch code {
		case CodeUnavailable:
			switch d.Cause {
			case causeDeadline:
				cause = context.DeadlineExceeded
			case causeCanceled:
				cause = context.Canceled
			default:
				cause = nil
			}
		case CodeNotLeader:
			cause = &raftlease.NotLeaderError{LeaderID: d.LeaderID, LeaderAddr: d.LeaderAddr}
		}
		return &raftlease.UnavailableError{Outcome: outcome, Err: &RemoteError{Code: code, Message: message, Err: cause}}
	}
	return &RemoteError{Code: code, Message: message, Err: sentinel}
}

// ErrorBody is the "error" object of an ErrorJSON: code, message and the
// detail fields inline.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ErrorDetail
}

// ErrorJSON is the body of an HTTP error response:
// {"error":{"code":…,"message":…,"outcome":…,"lease":{…}}}.
type ErrorJSON struct {
	Error ErrorBody `json:"error"`
}

// NewErrorJSON encodes err for an HTTP response and returns the status to
// send with it.
func NewErrorJSON(err error) (ErrorJSON, int) {
	code, status := ErrorCode(err)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return ErrorJSON{Error: ErrorBody{Code: code, Message: msg, ErrorDetail: DetailOf(err)}}, status
}

// Err rebuilds the error (see ErrorFromCode); nil when the code is empty.
func (e ErrorJSON) Err() error {
	if e.Error.Code == "" {
		return nil
	}
	return errorFrom(e.Error.Code, e.Error.Message, e.Error.ErrorDetail)
}
