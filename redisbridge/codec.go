package redisbridge

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/raftlease/raftlease"
)

// formatVersion is the "v" field of every lease hash the bridge writes.
const formatVersion = "1"

// encodeMetadata returns metadata as compact JSON, or "" for none.
func encodeMetadata(md map[string]string) (string, error) {
	if len(md) == 0 {
		return "", nil
	}
	b, err := json.Marshal(md)
	if err != nil {
		return "", fmt.Errorf("redisbridge: encode metadata: %w", err)
	}
	return string(b), nil
}

// rawLease holds a lease's fields as Redis returned them.
type rawLease struct {
	holder, token, ttlNs, metadata, acquiredMs, deadlineMs, revision string
}

// lease checks every field and builds the lease. remaining is clipped to
// the TTL (the TTL may not be a whole number of milliseconds; Redis expires
// at the next whole one).
func (r rawLease) lease(key, name string, remaining time.Duration) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, malformed(key, "lease name: %v", err)
	}
	if err := raftlease.ValidateHolder(r.holder); err != nil {
		return raftlease.Lease{}, malformed(key, "field holder: %v", err)
	}
	token, err := strconv.ParseUint(r.token, 10, 64)
	if err != nil || token == 0 {
		return raftlease.Lease{}, malformed(key, "field token %q is not a positive integer", r.token)
	}
	ttlNs, err := strconv.ParseInt(r.ttlNs, 10, 64)
	if err != nil {
		return raftlease.Lease{}, malformed(key, "field ttl_ns %q is not an integer", r.ttlNs)
	}
	ttl := time.Duration(ttlNs)
	if err := raftlease.ValidateTTL(ttl); err != nil {
		return raftlease.Lease{}, malformed(key, "field ttl_ns: %v", err)
	}
	var md map[string]string
	if r.metadata != "" {
		if err := json.Unmarshal([]byte(r.metadata), &md); err != nil {
			return raftlease.Lease{}, malformed(key, "field metadata is not a JSON object of strings: %v", err)
		}
		if err := raftlease.ValidateMetadata(md); err != nil {
			return raftlease.Lease{}, malformed(key, "field metadata: %v", err)
		}
	}
	acquired, err := parseMillis(r.acquiredMs)
	if err != nil {
		return raftlease.Lease{}, malformed(key, "field acquired_ms: %v", err)
	}
	deadline, err := parseMillis(r.deadlineMs)
	if err != nil {
		return raftlease.Lease{}, malformed(key, "field deadline_ms: %v", err)
	}
	revision, err := strconv.ParseUint(r.revision, 10, 64)
	if err != nil || revision == 0 {
		return raftlease.Lease{}, malformed(key, "field revision %q is not a positive integer", r.revision)
	}
	return raftlease.Lease{
		Name:       name,
		Holder:     r.holder,
		Token:      token,
		TTL:        ttl,
		Metadata:   md,
		AcquiredAt: time.UnixMilli(acquired),
		Deadline:   time.Duration(deadline) * time.Millisecond,
		Remaining:  min(remaining, ttl),
		Revision:   revision,
	}, nil
}

// parseMillis parses a count of milliseconds that fits a time.Duration.
func parseMillis(s string) (int64, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("%s ms is out of range", s)
	}
	return ms, nil
}

// replyStrings converts script reply elements to strings; integers become
// their decimal form.
func replyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	}
	return "", false
}

func replyInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// decodeFlat decodes the lease fields the scripts reply with:
// holder, token, ttl_ns, metadata, acquired_ms, deadline_ms, revision, pttl.
func decodeFlat(key, name string, v []any) (raftlease.Lease, error) {
	if len(v) != 8 {
		return raftlease.Lease{}, malformed(key, "script replied with %d lease fields, want 8", len(v))
	}
	var s [7]string
	for i := range s {
		var ok bool
		if s[i], ok = replyString(v[i]); !ok {
			return raftlease.Lease{}, malformed(key, "script reply field %d is a %T", i, v[i])
		}
	}
	pttl, ok := replyInt(v[7])
	if !ok {
		return raftlease.Lease{}, malformed(key, "script reply pttl is a %T", v[7])
	}
	r := rawLease{holder: s[0], token: s[1], ttlNs: s[2], metadata: s[3], acquiredMs: s[4], deadlineMs: s[5], revision: s[6]}
	return r.lease(key, name, time.Duration(pttl)*time.Millisecond)
}

// eventTypes maps the stream's type field to event types.
var eventTypes = map[string]raftlease.EventType{
	"acquired": raftlease.EventAcquired,
	"renewed":  raftlease.EventRenewed,
	"released": raftlease.EventReleased,
	"expired":  raftlease.EventExpired,
}

// decodeEvent decodes one entry of the event stream.
func decodeEvent(key string, id string, values map[string]any) (raftlease.Event, error) {
	get := func(f string) string {
		s, _ := replyString(values[f])
		return s
	}
	typ, ok := eventTypes[get("type")]
	if !ok {
		return raftlease.Event{}, malformed(key, "entry %s has event type %q", id, get("type"))
	}
	rev, err := strconv.ParseUint(get("rev"), 10, 64)
	if err != nil || rev == 0 {
		return raftlease.Event{}, malformed(key, "entry %s has revision %q", id, get("rev"))
	}
	at, err := parseMillis(get("at_ms"))
	if err != nil {
		return raftlease.Event{}, malformed(key, "entry %s field at_ms: %v", id, err)
	}
	r := rawLease{
		holder: get("holder"), token: get("token"), ttlNs: get("ttl_ns"), metadata: get("metadata"),
		acquiredMs: get("acquired_ms"), deadlineMs: get("deadline_ms"), revision: get("revision"),
	}
	l, err := r.lease(key, get("name"), 0)
	if err != nil {
		return raftlease.Event{}, fmt.Errorf("entry %s: %w", id, err)
	}
	if typ == raftlease.EventAcquired || typ == raftlease.EventRenewed || typ == raftlease.EventReleased {
		l.Remaining = min(max(l.Deadline-time.Duration(at)*time.Millisecond, 0), l.TTL)
	}
	return raftlease.Event{Type: typ, Lease: l, Revision: rev}, nil
}
