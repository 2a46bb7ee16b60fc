package transport_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

func TestLeaseJSON(t *testing.T) {
	l := heldLease()
	raw, err := json.Marshal(transport.FromLease(l))
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"name": "jobs/leader", "holder": "worker-7", "token": 42,
		"ttl_ms": 5000, "remaining_ms": 3000, "deadline_ms": 90000,
		"acquired_at": "2025-01-02T03:04:05.6Z", "revision": 17,
		"metadata": {"addr": "10.0.0.7:80"},
		"ttl_ns": 5000000000, "remaining_ns": 3000000000, "deadline_ns": 90000000123
	}`, string(raw))
	var back transport.LeaseJSON
	require.NoError(t, transport.DecodeJSON(strings.NewReader(string(raw)), &back, 1<<20))
	assert.Equal(t, l, back.ToLease())

	// Milliseconds are rounded down; nanoseconds are exact; a body with
	// milliseconds only (another client's) still decodes.
	l.Remaining = 1999 * time.Microsecond
	assert.Equal(t, int64(1), transport.FromLease(l).RemainingMs)
	assert.Equal(t, l.Remaining, transport.FromLease(l).ToLease().Remaining)
	var msOnly transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(`{"name":"n","ttl_ms":1500,"remaining_ms":700,"deadline_ms":9000}`), &msOnly))
	got := msOnly.ToLease()
	assert.Equal(t, 1500*time.Millisecond, got.TTL)
	assert.Equal(t, 700*time.Millisecond, got.Remaining)
	assert.Equal(t, 9*time.Second, got.Deadline)

	list := raftlease.LeaseList{Leases: []raftlease.Lease{heldLease()}, Revision: 99}
	raw, err = json.Marshal(transport.FromLeaseList(list))
	require.NoError(t, err)
	var lj transport.LeaseListJSON
	require.NoError(t, json.Unmarshal(raw, &lj))
	assert.Equal(t, list, lj.ToLeaseList())
	raw, _ = json.Marshal(transport.FromLeaseList(raftlease.LeaseList{Revision: 3}))
	assert.JSONEq(t, `{"leases":[],"revision":3}`, string(raw), "an empty listing is [] not null")

	for typ := raftlease.EventAcquired; typ <= raftlease.EventCompacted; typ++ {
		ev := raftlease.Event{Type: typ, Lease: heldLease(), Revision: 17}
		back, err := transport.FromEvent(ev).ToEvent()
		require.NoError(t, err)
		assert.Equal(t, ev, back)
	}
	_, err = transport.EventJSON{Type: "exploded"}.ToEvent()
	assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
}

func TestRequestJSON(t *testing.T) {
	acq := raftlease.AcquireRequest{Name: "n", Holder: "h", TTL: 1500 * time.Millisecond, Metadata: map[string]string{"k": "v"}, TokenFloor: 7}
	raw, _ := json.Marshal(transport.FromAcquireRequest(acq))
	assert.JSONEq(t, `{"holder":"h","ttl":"1.5s","metadata":{"k":"v"},"token_floor":7}`, string(raw))
	var aj transport.AcquireJSON
	require.NoError(t, transport.DecodeJSON(strings.NewReader(string(raw)), &aj, 1<<10))
	back, err := aj.ToRequest("n")
	require.NoError(t, err)
	assert.Equal(t, acq, back)

	for body, want := range map[string]string{
		`{"holder":"h"}`:             "ttl: must be set",
		`{"holder":"h","ttl":"5"}`:   `ttl: "5" is not a duration`,
		`{"holder":"h","ttl":"abc"}`: `ttl: "abc" is not a duration`,
	} {
		var aj transport.AcquireJSON
		require.NoError(t, transport.DecodeJSON(strings.NewReader(body), &aj, 1<<10))
		_, err := aj.ToRequest("n")
		assert.ErrorIs(t, err, raftlease.ErrInvalidArgument)
		assert.ErrorContains(t, err, want)
	}

	// Renew: absent ttl and metadata keep; {} clears metadata.
	for body, want := range map[string]raftlease.RenewRequest{
		`{"holder":"h","token":3}`:                            {Name: "n", Holder: "h", Token: 3},
		`{"holder":"h","token":3,"metadata":null}`:            {Name: "n", Holder: "h", Token: 3},
		`{"holder":"h","token":3,"ttl":"2s","metadata":{}}`:   {Name: "n", Holder: "h", Token: 3, TTL: 2 * time.Second, Metadata: map[string]string{}},
		`{"holder":"h","token":3,"metadata":{"role":"lead"}}`: {Name: "n", Holder: "h", Token: 3, Metadata: map[string]string{"role": "lead"}},
	} {
		var rj transport.RenewJSON
		require.NoError(t, transport.DecodeJSON(strings.NewReader(body), &rj, 1<<10))
		got, err := rj.ToRequest("n")
		require.NoError(t, err)
		assert.Equal(t, want, got, body)
		if want.Metadata == nil {
			assert.Nil(t, got.Metadata, "%s keeps metadata", body)
		} else {
			assert.NotNil(t, got.Metadata, "%s replaces metadata", body)
		}
		// And back to the same JSON meaning.
		raw, _ := json.Marshal(transport.FromRenewRequest(got))
		var again transport.RenewJSON
		require.NoError(t, json.Unmarshal(raw, &again))
		got2, err := again.ToRequest("n")
		require.NoError(t, err)
		assert.Equal(t, got, got2, string(raw))
	}
	raw, _ = json.Marshal(transport.FromRenewRequest(raftlease.RenewRequest{Holder: "h", Token: 1}))
	assert.JSONEq(t, `{"holder":"h","token":1}`, string(raw))

	rel := raftlease.ReleaseRequest{Name: "n", Holder: "h", Token: 9}
	raw, _ = json.Marshal(transport.FromReleaseRequest(rel))
	assert.JSONEq(t, `{"holder":"h","token":9}`, string(raw))
	var rj transport.ReleaseJSON
	require.NoError(t, transport.DecodeJSON(strings.NewReader(string(raw)), &rj, 1<<10))
	assert.Equal(t, rel, rj.ToRequest("n"))
}

func TestDecodeJSONIsStrict(t *testing.T) {
	for body, want := range map[string]string{
		``:                                  "empty",
		`   `:                               "empty",
		`{"holder":"h","token":1,"tokn":2}`: `unknown field "tokn"`,
		`{"holder":"h","token":1} {}`:       "data after the JSON value",
		`{"holder":"h","token":1} x`:        "data after the JSON value",
		`{"holder":"h","token":"1"}`:        `field "token"`,
		`{"holder":"h","token":-1}`:         `field "token"`,
		`{"holder":"h",`:                    "truncated",
		`{"holder" "h"}`:                    "not valid JSON",
		`{"holder":"` + strings.Repeat("x", 200) + `"}`: "larger than 100 bytes",
	} {
		var rj transport.ReleaseJSON
		err := transport.DecodeJSON(strings.NewReader(body), &rj, 100)
		assert.ErrorIs(t, err, raftlease.ErrInvalidArgument, body)
		assert.ErrorContains(t, err, want, body)
		assert.ErrorContains(t, err, "raftlease: invalid argument: body:", body)
	}
	var rj transport.ReleaseJSON
	assert.NoError(t, transport.DecodeJSON(strings.NewReader("{\"holder\":\"h\",\"token\":1}\n"), &rj, 100), "a trailing newline is fine")
	exact := `{"holder":"h","token":1}`
	assert.NoError(t, transport.DecodeJSON(strings.NewReader(exact), &rj, int64(len(exact))), "exactly maxBytes is fine")
}
