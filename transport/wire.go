package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/raftlease/raftlease"
)

// JSON wire types shared by the HTTP API, its Go client and tools. Field
// names are snake_case; a duration carries its unit in the name (ttl_ms,
// ttl_ns), except in requests, where a TTL is a Go duration string ("5s",
// "1500ms") for people typing curl commands.

// LeaseJSON is a raftlease.Lease on the wire.
//
// Durations travel twice: in whole milliseconds (ttl_ms, remaining_ms,
// deadline_ms, rounded down) for people and for languages without 64-bit
// integers, and exactly in nanoseconds (ttl_ns, remaining_ns, deadline_ns),
// so that a lease read through the HTTP API or the forwarding RPC equals
// the one the store holds. ToLease uses the nanosecond fields when present
// and falls back to the millisecond ones.
type LeaseJSON struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	Token  uint64 `json:"token"`
	// TTLMs is the TTL of the last acquire or renew.
	TTLMs int64 `json:"ttl_ms"`
	// RemainingMs is the time left before the deadline when the lease was
	// read.
	RemainingMs int64 `json:"remaining_ms"`
	// DeadlineMs is the deadline on the store's consensus clock;
	// comparable only with other deadlines of the same store.
	DeadlineMs int64 `json:"deadline_ms"`
	// AcquiredAt is informational wall-clock time (RFC 3339).
	AcquiredAt time.Time         `json:"acquired_at"`
	Revision   uint64            `json:"revision"`
	Metadata   map[string]string `json:"metadata,omitempty"`

	// The same durations, exact.
	TTLNs       int64 `json:"ttl_ns,omitempty"`
	RemainingNs int64 `json:"remaining_ns,omitempty"`
	DeadlineNs  int64 `json:"deadline_ns,omitempty"`
}

// FromLease converts a lease to its wire form.
func FromLease(l raftlease.Lease) LeaseJSON {
	return LeaseJSON{
		Name:        l.Name,
		Holder:      l.Holder,
		Token:       l.Token,
		TTLMs:       l.TTL.Milliseconds(),
		RemainingMs: l.Remaining.Milliseconds(),
		DeadlineMs:  l.Deadline.Milliseconds(),
		AcquiredAt:  l.AcquiredAt,
		Revision:    l.Revision,
		Metadata:    l.Metadata,
		TTLNs:       l.TTL.Nanoseconds(),
		RemainingNs: l.Remaining.Nanoseconds(),
		DeadlineNs:  l.Deadline.Nanoseconds(),
	}
}

// ToLease converts the wire form back to a lease.
func (j LeaseJSON) ToLease() raftlease.Lease {
	return raftlease.Lease{
		Name:       j.Name,
		Holder:     j.Holder,
		Token:      j.Token,
		TTL:        exact(j.TTLNs, j.TTLMs),
		Remaining:  exact(j.RemainingNs, j.RemainingMs),
		Deadline:   exact(j.DeadlineNs, j.DeadlineMs),
		AcquiredAt: j.AcquiredAt,
		Revision:   j.Revision,
		Metadata:   j.Metadata,
	}
}

func exact(ns, ms int64) time.Duration {
	if ns != 0 {
		return time.Duration(ns)
	}
	return time.Duration(ms) * time.Millisecond
}

// LeaseListJSON is a raftlease.LeaseList on the wire.
type LeaseListJSON struct {
	Leases   []LeaseJSON `json:"leases"`
	Revision uint64      `json:"revision"`
}

// FromLeaseList converts a listing to its wire form; Leases is never null.
func FromLeaseList(ll raftlease.LeaseList) LeaseListJSON {
	out := LeaseListJSON{Leases: make([]LeaseJSON, len(ll.Leases)), Revision: ll.Revision}
	for i, l := range ll.Leases {
		out.Leases[i] = FromLease(l)
	}
	return out
}

// ToLeaseList converts the wire form back to a listing.
func (j LeaseListJSON) ToLeaseList() raftlease.LeaseList {
	out := raftlease.LeaseList{Revision: j.Revision}
	if len(j.Leases) > 0 {
		out.Leases = make([]raftlease.Lease, len(j.Leases))
		for i, l := range j.Leases {
			out.Leases[i] = l.ToLease()
		}
	}
	return out
}

// EventJSON is a raftlease.Event on the wire. Type is the EventType's
// String(): acquired, renewed, released, expired or compacted.
type EventJSON struct {
	Type     string    `json:"type"`
	Lease    LeaseJSON `json:"lease"`
	Revision uint64    `json:"revision"`
}

// FromEvent converts an event to its wire form.
func FromEvent(e raftlease.Event) EventJSON {
	return EventJSON{Type: e.Type.String(), Lease: FromLease(e.Lease), Revision: e.Revision}
}

// ToEvent converts the wire form back to an event. An unknown type is an
// error matching ErrInvalidArgument.
func (j EventJSON) ToEvent() (raftlease.Event, error) {
	for t := raftlease.EventAcquired; t <= raftlease.EventCompacted; t++ {
		if t.String() == j.Type {
			return raftlease.Event{Type: t, Lease: j.Lease.ToLease(), Revision: j.Revision}, nil
		}
	}
	return raftlease.Event{}, &raftlease.FieldError{Field: "type", Reason: fmt.Sprintf("unknown event type %q", j.Type)}
}

// AcquireJSON is the body of an acquire request; the lease name travels in
// the URL.
type AcquireJSON struct {
	Holder string `json:"holder"`
	// TTL is a Go duration string, such as "5s".
	TTL        string            `json:"ttl"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	TokenFloor uint64            `json:"token_floor,omitempty"`
}

// FromAcquireRequest converts a request to its wire form (the name is
// left to the caller's URL).
func FromAcquireRequest(r raftlease.AcquireRequest) AcquireJSON {
	return AcquireJSON{Holder: r.Holder, TTL: r.TTL.String(), Metadata: r.Metadata, TokenFloor: r.TokenFloor}
}

// ToRequest converts the wire form to a request for the named lease. It
// fails with a *raftlease.FieldError when the TTL does not parse; it does
// not validate otherwise (the store does).
func (j AcquireJSON) ToRequest(name string) (raftlease.AcquireRequest, error) {
	ttl, err := parseTTL(j.TTL, true)
	if err != nil {
		return raftlease.AcquireRequest{}, err
	}
	return raftlease.AcquireRequest{Name: name, Holder: j.Holder, TTL: ttl, Metadata: j.Metadata, TokenFloor: j.TokenFloor}, nil
}

// RenewJSON is the body of a renew request. An absent (or empty) ttl keeps
// the lease's TTL; an absent (or null) metadata keeps its metadata, and {}
// clears it.
type RenewJSON struct {
	Holder   string            `json:"holder"`
	Token    uint64            `json:"token"`
	TTL      string            `json:"ttl,omitempty"`
	Metadata map[string]string `json:"metadata,omitzero"`
}

// FromRenewRequest converts a request to its wire form. A nil Metadata is
// omitted (keep) and an empty non-nil one is sent as {} (clear).
func FromRenewRequest(r raftlease.RenewRequest) RenewJSON {
	j := RenewJSON{Holder: r.Holder, Token: r.Token, Metadata: r.Metadata}
	if r.TTL != 0 {
		j.TTL = r.TTL.String()
	}
	return j
}

// ToRequest converts the wire form to a request for the named lease.
func (j RenewJSON) ToRequest(name string) (raftlease.RenewRequest, error) {
	ttl, err := parseTTL(j.TTL, false)
	if err != nil {
		return raftlease.RenewRequest{}, err
	}
	return raftlease.RenewRequest{Name: name, Holder: j.Holder, Token: j.Token, TTL: ttl, Metadata: j.Metadata}, nil
}

// ReleaseJSON is the body of a release request.
type ReleaseJSON struct {
	Holder string `json:"holder"`
	Token  uint64 `json:"token"`
}

// FromReleaseRequest converts a request to its wire form.
func FromReleaseRequest(r raftlease.ReleaseRequest) ReleaseJSON {
	return ReleaseJSON{Holder: r.Holder, Token: r.Token}
}

// ToRequest converts the wire form to a request for the named lease.
func (j ReleaseJSON) ToRequest(name string) raftlease.ReleaseRequest {
	return raftlease.ReleaseRequest{Name: name, Holder: j.Holder, Token: j.Token}
}

func parseTTL(s string, required bool) (time.Duration, error) {
	if s == "" {
		if required {
			return 0, &raftlease.FieldError{Field: "ttl", Reason: `must be set, as a duration such as "5s"`}
		}
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &raftlease.FieldError{Field: "ttl", Reason: fmt.Sprintf(`%q is not a duration such as "5s"`, s)}
	}
	return d, nil
}

// DecodeJSON decodes exactly one JSON value from r into v, reading at most
// maxBytes. It refuses, with a *raftlease.FieldError (field "body")
// matching ErrInvalidArgument, an empty or oversized body, malformed JSON,
// unknown fields, wrong types and trailing data after the value.
func DecodeJSON(r io.Reader, v any, maxBytes int64) error {
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return fmt.Errorf("transport: read body: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return bodyError("is larger than %d bytes", maxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return bodyError("is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return bodyError("is not valid JSON: %v (at byte %d)", se, se.Offset)
		case errors.As(err, &te):
			return bodyError("field %q: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return bodyError("is truncated JSON")
		}
		return bodyError("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bodyError("has data after the JSON value")
	}
	return nil
}

func bodyError(format string, args ...any) error {
	return &raftlease.FieldError{Field: "body", Reason: fmt.Sprintf(format, args...)}
}
