// Package storetest is the conformance suite for raftlease.Store, in the
// spirit of testing/fstest and testing/slogtest: one set of subtests that
// every store passes — the in-process store, the embedded Raft node, the HTTP
// client of a leasenode cluster and the Redis bridge.
//
// A store's own tests call Run with a function that builds a fresh Subject
// for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Subject {
//			clock := testutil.NewManualClock()
//			s, err := memstore.New(memstore.Options{Clock: clock})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return storetest.Subject{Store: s, Advance: clock.Advance}
//		})
//	}
//
// The suite checks the contract written in the root package's Store, Lease,
// Event and error documentation: grants, refusals and their errors, fencing
// tokens, deadlines and expiry, List, Watch (order, revisions, filters,
// resume, close), concurrent acquisition, and input validation. See
// docs/storetest.md for the list of subtests and how to wire a store.
//
// # Time
//
// A store driven by a manual clock sets Subject.Advance; the suite then moves
// time by exact amounts and checks deadlines to the millisecond. A store on
// real time leaves Advance nil; the suite then lets real time pass, uses short
// TTLs where it needs a lease to expire and long ones where it needs a lease
// to live, and polls with a deadline wherever it waits for the store. It never
// sleeps to synchronise with the store.
//
// # Shared stores
//
// Every subtest uses lease names under its own prefix, unique per Run call,
// so a Subject may share one store (one Redis, one cluster) between subtests
// and between test runs. Subtests run one after another, never in parallel,
// and release the leases they still hold when they end.
//
// The package imports only the root package and the standard library, so
// any store's tests may import it without an import cycle.
package storetest

import (
	"testing"
	"time"

	"github.com/raftlease/raftlease"
)

// Subject is one store under test, with a way to move its time.
type Subject struct {
	// Store is the store under test. Required.
	Store raftlease.Store
	// Advance moves the store's time forward by d (a manual clock's
	// Advance). Nil means the store runs on real time; the suite then waits
	// in real time instead.
	Advance func(d time.Duration)
	// Settle, when set, blocks until the store has caught up with an
	// Advance: for example until background expiry has been applied on
	// every replica. The suite calls it after each Advance, except where it
	// checks that reads do not depend on background expiry. May be nil.
	Settle func()
}

// Run runs the conformance suite. For each subtest it calls newSubject with
// the subtest's *testing.T, so a store built there may register its Close
// with t.Cleanup. newSubject may also return the same shared store every
// time: subtests do not see each other's leases.
func Run(t *testing.T, newSubject func(t *testing.T) Subject) {
	run := newRunID()
	for _, g := range suite {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					subj := newSubject(t)
					if subj.Store == nil {
						t.Fatal("storetest: newSubject returned a Subject with a nil Store")
					}
					c.fn(newEnv(t, subj, run))
				})
			}
		})
	}
}

type group struct {
	name  string
	cases []testCase
}

type testCase struct {
	name string
	fn   func(e *env)
}

// suite lists every subtest, in the order Run runs them.
var suite = []group{
	{"Acquire", []testCase{
		{"Free", testAcquireFree},
		{"Held", testAcquireHeld},
		{"Reacquire", testAcquireReacquire},
		{"TokenFloor", testAcquireTokenFloor},
	}},
	{"Renew", []testCase{
		{"Extends", testRenewExtends},
		{"Refused", testRenewRefused},
	}},
	{"Release", []testCase{
		{"ByHolder", testReleaseByHolder},
		{"Refused", testReleaseRefused},
	}},
	{"Tokens", []testCase{
		{"Monotonic", testTokensMonotonic},
	}},
	{"Expiry", []testCase{
		{"Deadline", testExpiryDeadline},
		{"RenewKeepsAlive", testExpiryRenewKeepsAlive},
		{"UnremovedInvisible", testExpiryUnremovedInvisible},
	}},
	{"List", []testCase{
		{"Prefix", testListPrefix},
		{"ExcludesExpired", testListExcludesExpired},
	}},
	{"Watch", []testCase{
		{"NameAndPrefix", testWatchNameAndPrefix},
		{"Resume", testWatchResume},
		{"StartsNow", testWatchStartsNow},
		{"ClosesOnCancel", testWatchClosesOnCancel},
	}},
	{"Concurrent", []testCase{
		{"Acquire", testConcurrentAcquire},
		{"RenewWhileContended", testConcurrentRenewWhileContended},
	}},
	{"InvalidArgument", []testCase{
		{"Acquire", testInvalidAcquire},
		{"Renew", testInvalidRenew},
		{"Release", testInvalidRelease},
		{"Get", testInvalidGet},
		{"List", testInvalidList},
		{"Watch", testInvalidWatch},
		{"LimitsAccepted", testLimitsAccepted},
	}},
}
