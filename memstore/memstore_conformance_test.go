package memstore_test

import (
	"testing"

	"github.com/raftlease/raftlease/memstore"
	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/testutil/storetest"
)

// TestConformance runs the Store conformance suite on a manual clock.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		clock := testutil.NewManualClock()
		s, err := memstore.New(memstore.Options{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return storetest.Subject{Store: s, Advance: clock.Advance}
	})
}

// TestConformanceRealTime runs the suite on the system clock, one store
// shared by every subtest: the path the cluster, client and Redis stores
// take, checked here against the reference store.
func TestConformanceRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs on real time (about 11 s)")
	}
	s, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		return storetest.Subject{Store: s}
	})
}
