package redisbridge_test

import (
	"errors"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/memstore"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

func TestExport(t *testing.T) {
	r := testutil.StartRedis(t)
	s := newStore(t, r, redisbridge.Options{})
	c := ctx(t)
	acquire := func(req raftlease.AcquireRequest) raftlease.Lease {
		t.Helper()
		l, err := s.Acquire(c, req)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := acquire(raftlease.AcquireRequest{Name: "a", Holder: "h1", TTL: time.Minute, Metadata: map[string]string{"addr": "10.0.0.1:80"}})
	b := acquire(raftlease.AcquireRequest{Name: "b", Holder: "h2", TTL: time.Hour, TokenFloor: 1000})
	for range 3 { // c: free, counter 3
		l := acquire(raftlease.AcquireRequest{Name: "c", Holder: "h3", TTL: time.Minute})
		if err := s.Release(c, raftlease.ReleaseRequest{Name: "c", Holder: "h3", Token: l.Token}); err != nil {
			t.Fatal(err)
		}
	}
	acquire(raftlease.AcquireRequest{Name: "d", Holder: "h4", TTL: raftlease.MinTTL}) // d: expires
	eventually(t, 5*time.Second, "d expiring", func() bool {
		_, err := s.Get(c, "d", raftlease.ReadOptions{})
		return errors.Is(err, raftlease.ErrNotFound)
	})

	got, err := s.Export(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []redisbridge.ExportedLease{
		{Name: "a", Holder: "h1", Token: a.Token, TTL: time.Minute, Metadata: a.Metadata, CounterValue: 1},
		{Name: "b", Holder: "h2", Token: b.Token, TTL: time.Hour, CounterValue: 1001},
		{Name: "c", CounterValue: 3},
		{Name: "d", CounterValue: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("Export returned %d names %v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || g.Holder != w.Holder || g.Token != w.Token || g.TTL != w.TTL || g.CounterValue != w.CounterValue ||
			len(g.Metadata) != len(w.Metadata) || g.Live() != (w.Holder != "") {
			t.Errorf("Export[%d] = %+v, want %+v", i, g, w)
		}
		if g.Live() && (g.Remaining <= 0 || g.Remaining > g.TTL) {
			t.Errorf("Export[%d] Remaining %v outside (0, %v]", i, g.Remaining, g.TTL)
		}
		if !g.Live() && g.Remaining != 0 {
			t.Errorf("Export[%d] of a free name has Remaining %v", i, g.Remaining)
		}
	}

	// What `leasenode migrate --from-redis` will do: carry every counter
	// over as a token floor, and the live leases with what remains of them.
	dst, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, e := range got {
		holder, ttl := e.Holder, e.Remaining
		if !e.Live() {
			holder, ttl = "migration", raftlease.MinTTL
		}
		l, err := dst.Acquire(c, raftlease.AcquireRequest{Name: e.Name, Holder: holder, TTL: max(ttl, raftlease.MinTTL), Metadata: e.Metadata, TokenFloor: e.CounterValue})
		if err != nil {
			t.Fatal(err)
		}
		if l.Token <= e.CounterValue {
			t.Errorf("migrated %s: token %d, want above the Redis counter %d", e.Name, l.Token, e.CounterValue)
		}
	}
}
