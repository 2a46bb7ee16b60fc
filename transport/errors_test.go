package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// sentinels are every error a caller may test with errors.Is.
var sentinels = []error{
	raftlease.ErrInvalidArgument, raftlease.ErrLeaseHeld, raftlease.ErrNotHolder, raftlease.ErrNotFound,
	raftlease.ErrUnavailable, raftlease.ErrNoQuorum, raftlease.ErrNotLeader, raftlease.ErrClosed,
	raftlease.ErrCompacted, raftlease.ErrStaleToken, transport.ErrUnauthorized,
}

type errorCase struct {
	name   string
	err    error
	code   string
	status int
}

func heldLease() raftlease.Lease {
	return raftlease.Lease{
		Name: "jobs/leader", Holder: "worker-7", Token: 42, TTL: 5 * time.Second,
		Metadata:   map[string]string{"addr": "10.0.0.7:80"},
		AcquiredAt: time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC),
		Deadline:   90*time.Second + 123, Remaining: 3 * time.Second, Revision: 17,
	}
}

func errorCases() []errorCase {
	return []errorCase{
		{"invalid_argument", raftlease.ErrInvalidArgument, "invalid_argument", 400},
		{"field", &raftlease.FieldError{Field: "ttl", Reason: "1ms is outside [100ms, 24h0m0s]"}, "invalid_argument", 400},
		{"fields_joined", errors.Join(&raftlease.FieldError{Field: "name", Reason: "must not be empty"}, &raftlease.FieldError{Field: "ttl", Reason: "too short"}), "invalid_argument", 400},
		{"unauthorized", transport.ErrUnauthorized, "unauthorized", 401},
		{"not_found", raftlease.ErrNotFound, "not_found", 404},
		{"not_found_wrapped", fmt.Errorf("get %q: %w", "x", raftlease.ErrNotFound), "not_found", 404},
		{"lease_held", raftlease.ErrLeaseHeld, "lease_held", 409},
		{"held_error", &raftlease.HeldError{Current: heldLease()}, "lease_held", 409},
		{"not_holder", raftlease.ErrNotHolder, "not_holder", 409},
		{"stale_token", raftlease.ErrStaleToken, "stale_token", 409},
		{"compacted", raftlease.ErrCompacted, "compacted", 410},
		{"unavailable", raftlease.ErrUnavailable, "unavailable", 503},
		{"unavailable_unknown", &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: errors.New("cluster: apply timed out")}, "unavailable", 503},
		{"unavailable_not_applied", &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: errors.New("cluster: queue full")}, "unavailable", 503},
		{"not_leader", raftlease.ErrNotLeader, "not_leader", 503},
		{"not_leader_error", &raftlease.NotLeaderError{LeaderID: "n1", LeaderAddr: "127.0.0.1:7001"}, "not_leader", 503},
		{"not_leader_not_applied", &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: &raftlease.NotLeaderError{}}, "not_leader", 503},
		{"no_quorum", raftlease.ErrNoQuorum, "no_quorum", 503},
		{"no_quorum_not_applied", &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: no leader known", raftlease.ErrNoQuorum)}, "no_quorum", 503},
		{"closed", raftlease.ErrClosed, "closed", 503},
		{"closed_wrapped", fmt.Errorf("cluster: %w", raftlease.ErrClosed), "closed", 503},
		{"deadline", fmt.Errorf("cluster: wait for apply: %w", context.DeadlineExceeded), "unavailable", 503},
		{"canceled", context.Canceled, "unavailable", 503},
		{"internal", errors.New("disk on fire"), "internal", 500},
	}
}

// checkRoundTrip asserts that got, the rebuilt form of c.err, has the same
// code, matches every root error c.err matches (and no others, but for
// documented widening to ErrUnavailable), and keeps typed details.
func checkRoundTrip(t *testing.T, c errorCase, got error) {
	t.Helper()
	code, status := transport.ErrorCode(got)
	assert.Equal(t, c.code, code, "code")
	assert.Equal(t, c.status, status, "status")
	for _, s := range append(sentinels, context.DeadlineExceeded, context.Canceled) {
		if errors.Is(c.err, s) {
			assert.ErrorIs(t, got, s)
		} else if errors.Is(got, s) {
			widened := s == raftlease.ErrUnavailable && c.status == http.StatusServiceUnavailable
			assert.True(t, widened, "rebuilt error also matches %v", s)
		}
	}
	if c.status == http.StatusServiceUnavailable {
		assert.Equal(t, raftlease.OutcomeOf(c.err), raftlease.OutcomeOf(got), "outcome")
	}
	assert.True(t, strings.HasPrefix(got.Error(), c.err.Error()), "message %q keeps %q", got.Error(), c.err.Error())

	var wantHeld, gotHeld *raftlease.HeldError
	if errors.As(c.err, &wantHeld) {
		require.ErrorAs(t, got, &gotHeld)
		assert.Equal(t, wantHeld.Current, gotHeld.Current)
	}
	var wantNL, gotNL *raftlease.NotLeaderError
	if errors.As(c.err, &wantNL) {
		require.ErrorAs(t, got, &gotNL)
		assert.Equal(t, *wantNL, *gotNL)
	}
	var wantField, gotField *raftlease.FieldError
	if errors.As(c.err, &wantField) && wantField.Error() == c.err.Error() {
		require.ErrorAs(t, got, &gotField)
		assert.Equal(t, *wantField, *gotField)
	}
}

func TestErrorTableRoundTrip(t *testing.T) {
	for _, c := range errorCases() {
		t.Run(c.name, func(t *testing.T) {
			code, status := transport.ErrorCode(c.err)
			assert.Equal(t, c.code, code)
			assert.Equal(t, c.status, status)
			detail, err := json.Marshal(transport.DetailOf(c.err))
			require.NoError(t, err)
			checkRoundTrip(t, c, transport.ErrorFromCode(code, c.err.Error(), detail))

			// Through an HTTP error body.
			body, st := transport.NewErrorJSON(c.err)
			assert.Equal(t, c.status, st)
			raw, err := json.Marshal(body)
			require.NoError(t, err)
			var back transport.ErrorJSON
			require.NoError(t, transport.DecodeJSON(strings.NewReader(string(raw)), &back, 1<<20))
			checkRoundTrip(t, c, back.Err())
		})
	}
}

func TestErrorCodeEdges(t *testing.T) {
	code, status := transport.ErrorCode(nil)
	assert.Equal(t, "", code)
	assert.Equal(t, 200, status)

	body, st := transport.NewErrorJSON(&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: &raftlease.NotLeaderError{LeaderID: "n2", LeaderAddr: "h:1"}})
	assert.Equal(t, 503, st)
	raw, _ := json.Marshal(body)
	assert.JSONEq(t, `{"error":{"code":"not_leader","message":"raftlease: not the leader (leader is n2 at h:1) (outcome not_applied)","outcome":"not_applied","leader_id":"n2","leader_addr":"h:1"}}`, string(raw))

	body, _ = transport.NewErrorJSON(&raftlease.HeldError{Current: raftlease.Lease{Name: "a", Holder: "h", Token: 3, TTL: time.Second}})
	raw, _ = json.Marshal(body)
	assert.Contains(t, string(raw), `"lease":{"name":"a","holder":"h","token":3,"ttl_ms":1000`)

	err := transport.ErrorFromCode("teapot", "i am a teapot", []byte("{not json"))
	code, status = transport.ErrorCode(err)
	assert.Equal(t, "internal", code, "an unknown code from a newer peer is internal")
	assert.Equal(t, 500, status)
	assert.Equal(t, "i am a teapot", err.Error())
	var re *transport.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "teapot", re.Code)

	err = transport.ErrorFromCode("lease_held", "", nil)
	assert.ErrorIs(t, err, raftlease.ErrLeaseHeld, "no detail still matches")
	assert.Equal(t, raftlease.ErrLeaseHeld.Error(), err.Error())

	assert.NoError(t, transport.ErrorJSON{}.Err())
}
