package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
)

// Timings. A manual-clock store sees exactly these durations; a real-time
// store sees them as real time, so they are chosen to leave a healthy store
// on a loaded CI machine seconds of slack.
const (
	// holdTTL is the TTL of a lease that must stay alive for the whole
	// subtest. Subtests release such leases when they end.
	holdTTL = 30 * time.Second
	// shortTTL is the TTL of a lease a subtest lets expire.
	shortTTL = 2 * raftlease.MinTTL
	// expiryWait bounds how long after its deadline a real-time store may
	// take to report a lease gone.
	expiryWait = 10 * time.Second
	// eventWait bounds how long a watch may take to deliver an event, and a
	// cancelled watch to close its channel.
	eventWait = 10 * time.Second
	// pollEvery is the polling interval while waiting for a real-time store.
	pollEvery = 10 * time.Millisecond
	// subtestTimeout bounds every store call of one subtest.
	subtestTimeout = 2 * time.Minute
)

// newRunID returns a short random id that keeps the names of one Run apart
// from those of any other Run on a shared store.
func newRunID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%08x", uint32(time.Now().UnixNano()))
	}
	return hex.EncodeToString(b[:])
}

// env is one subtest's view of the store.
type env struct {
	t      *testing.T
	store  raftlease.Store
	subj   Subject
	ctx    context.Context
	prefix string

	mu sync.Mutex
	// held is the last grant the subtest got per name, released at cleanup.
	held map[string]raftlease.Lease
	// earliest is, per name, the earliest real time its current grant may
	// expire: when the granting request was sent plus the TTL granted. Used
	// only for real-time stores, to catch early expiry.
	earliest map[string]time.Time
}

func newEnv(t *testing.T, subj Subject, run string) *env {
	ctx, cancel := context.WithTimeout(t.Context(), subtestTimeout)
	t.Cleanup(cancel)
	e := &env{
		t:        t,
		store:    subj.Store,
		subj:     subj,
		ctx:      ctx,
		prefix:   namePrefix(run, t.Name()),
		held:     make(map[string]raftlease.Lease),
		earliest: make(map[string]time.Time),
	}
	t.Cleanup(e.releaseAll)
	return e
}

// subtests numbers the subtests of every Run in this process.
var subtests atomic.Uint64

// maxTestNameInPrefix bounds the part of a prefix taken from the test name,
// so that the suite can still build names of exactly MaxNameLen bytes.
const maxTestNameInPrefix = 120

// namePrefix returns a subtest's lease name prefix:
// "storetest.<run>.<seq>/<test name>/", the test name shortened to its end
// when long. The run id and sequence number make it unique.
func namePrefix(run, testName string) string {
	name := sanitize(testName)
	if len(name) > maxTestNameInPrefix {
		name = name[len(name)-maxTestNameInPrefix:]
	}
	return fmt.Sprintf("storetest.%s.%d/%s/", run, subtests.Add(1), name)
}

// sanitize maps a test name onto the lease name alphabet.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if raftlease.ValidateName(string(c)) != nil {
			b[i] = '_'
		}
	}
	return string(b)
}

// name returns a lease name under the subtest's prefix.
func (e *env) name(s string) string { return e.prefix + s }

// outside returns a lease name that does not start with the subtest's
// prefix but shares all of it except the final slash.
func (e *env) outside(s string) string {
	return strings.TrimSuffix(e.prefix, "/") + "-outside/" + s
}

// manual reports whether the store runs on a manual clock.
func (e *env) manual() bool { return e.subj.Advance != nil }

// releaseAll releases what the subtest still holds, so a shared store does
// not keep it for long. Errors are ignored: the lease may have expired.
func (e *env) releaseAll() {
	e.mu.Lock()
	held := maps.Clone(e.held)
	e.mu.Unlock()
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range held {
		_ = e.store.Release(ctx, raftlease.ReleaseRequest{Name: l.Name, Holder: l.Holder, Token: l.Token})
	}
}

func (e *env) track(l raftlease.Lease, sent time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.held[l.Name] = l
	e.earliest[l.Name] = sent.Add(l.TTL)
}

func (e *env) untrack(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.held, name)
	delete(e.earliest, name)
}

// pass lets d of the store's time go by: Advance then Settle on a manual
// clock, a real-time wait otherwise. The real-time wait lets time pass; it
// does not synchronise with anything.
func (e *env) pass(d time.Duration) {
	e.t.Helper()
	if e.manual() {
		e.subj.Advance(d)
		e.settle()
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-e.ctx.Done():
		e.t.Fatalf("waiting %v: %v", d, e.ctx.Err())
	}
}

func (e *env) settle() {
	if e.subj.Settle != nil {
		e.subj.Settle()
	}
}

// --- Store calls that must succeed ---

func (e *env) tryAcquire(req raftlease.AcquireRequest) (raftlease.Lease, error) {
	sent := time.Now()
	l, err := e.store.Acquire(e.ctx, req)
	if err == nil {
		e.track(l, sent)
	}
	return l, err
}

func (e *env) acquire(req raftlease.AcquireRequest) raftlease.Lease {
	e.t.Helper()
	l, err := e.tryAcquire(req)
	if err != nil {
		e.t.Fatalf("Acquire(%q, holder %q, ttl %v): %v", req.Name, req.Holder, req.TTL, err)
	}
	if l.Name != req.Name || l.Holder != req.Holder {
		e.t.Fatalf("Acquire(%q, holder %q) returned lease %q held by %q", req.Name, req.Holder, l.Name, l.Holder)
	}
	return l
}

func (e *env) tryRenew(req raftlease.RenewRequest) (raftlease.Lease, error) {
	sent := time.Now()
	l, err := e.store.Renew(e.ctx, req)
	if err == nil {
		e.track(l, sent)
	}
	return l, err
}

func (e *env) renew(req raftlease.RenewRequest) raftlease.Lease {
	e.t.Helper()
	l, err := e.tryRenew(req)
	if err != nil {
		e.t.Fatalf("Renew(%q, holder %q, token %d): %v", req.Name, req.Holder, req.Token, err)
	}
	if l.Name != req.Name || l.Holder != req.Holder || l.Token != req.Token {
		e.t.Fatalf("Renew(%q, holder %q, token %d) returned lease %q held by %q under token %d",
			req.Name, req.Holder, req.Token, l.Name, l.Holder, l.Token)
	}
	return l
}

func (e *env) tryRelease(req raftlease.ReleaseRequest) error {
	err := e.store.Release(e.ctx, req)
	if err == nil {
		e.untrack(req.Name)
	}
	return err
}

func (e *env) release(l raftlease.Lease) {
	e.t.Helper()
	if err := e.tryRelease(raftlease.ReleaseRequest{Name: l.Name, Holder: l.Holder, Token: l.Token}); err != nil {
		e.t.Fatalf("Release(%q, holder %q, token %d): %v", l.Name, l.Holder, l.Token, err)
	}
}

func (e *env) get(name string) raftlease.Lease {
	e.t.Helper()
	l, err := e.store.Get(e.ctx, name, raftlease.ReadOptions{})
	if err != nil {
		e.t.Fatalf("Get(%q): %v", name, err)
	}
	if l.Name != name {
		e.t.Fatalf("Get(%q) returned lease %q", name, l.Name)
	}
	checkRemaining(e.t, "Get("+name+")", l)
	return l
}

func (e *env) list(prefix string) raftlease.LeaseList {
	e.t.Helper()
	ls, err := e.store.List(e.ctx, prefix, raftlease.ReadOptions{})
	if err != nil {
		e.t.Fatalf("List(%q): %v", prefix, err)
	}
	what := fmt.Sprintf("List(%q)", prefix)
	for i, l := range ls.Leases {
		if !strings.HasPrefix(l.Name, prefix) {
			e.t.Errorf("%s returned %q, which lacks the prefix", what, l.Name)
		}
		if i > 0 && ls.Leases[i-1].Name >= l.Name {
			e.t.Errorf("%s is not sorted by name without duplicates: %q then %q", what, ls.Leases[i-1].Name, l.Name)
		}
		if l.Revision > ls.Revision {
			e.t.Errorf("%s: lease %q has revision %d, above the listing's revision %d", what, l.Name, l.Revision, ls.Revision)
		}
		checkRemaining(e.t, what+" lease "+l.Name, l)
	}
	return ls
}

// --- Expected outcomes ---

// wantErr fails the subtest unless err matches target.
func (e *env) wantErr(err, target error, format string, args ...any) {
	e.t.Helper()
	if !errors.Is(err, target) {
		e.t.Errorf("%s: got error %v, want one matching %v", fmt.Sprintf(format, args...), err, target)
	}
}

// gone checks that name has no live lease.
func (e *env) gone(name string) {
	e.t.Helper()
	l, err := e.store.Get(e.ctx, name, raftlease.ReadOptions{})
	if !errors.Is(err, raftlease.ErrNotFound) {
		e.t.Errorf("Get(%q) = %s, %v; want an error matching ErrNotFound", name, fmtLease(l), err)
	}
}

// unchanged checks that the lease on want.Name is still exactly want.
func (e *env) unchanged(want raftlease.Lease, after string) {
	e.t.Helper()
	l, err := e.store.Get(e.ctx, want.Name, raftlease.ReadOptions{})
	if err != nil {
		e.t.Errorf("after %s: Get(%q): %v; want the lease unchanged", after, want.Name, err)
		return
	}
	if d := diffLease(l, want); d != "" {
		e.t.Errorf("after %s: lease %q changed: %s", after, want.Name, d)
	}
}

// awaitExpiry lets the live lease on name expire and checks that the store
// then reports it gone. On a manual clock it advances exactly to the
// deadline (Remaining reported by Get). On real time it polls Get until the
// lease is gone, failing if it goes before its TTL has passed or stays
// expiryWait past it.
func (e *env) awaitExpiry(name string) {
	e.t.Helper()
	if e.manual() {
		l := e.get(name)
		e.pass(l.Remaining)
		e.gone(name)
		return
	}
	e.mu.Lock()
	earliest, ok := e.earliest[name]
	ttl := e.held[name].TTL
	e.mu.Unlock()
	if !ok {
		e.t.Fatalf("storetest: awaitExpiry(%q) without a grant to wait for", name)
	}
	// Allow for the store measuring time slightly differently (Redis
	// rounds to milliseconds); a lease gone before 90% of its TTL is wrong.
	notBefore := earliest.Add(-ttl / 10)
	limit := earliest.Add(expiryWait)
	for {
		l, err := e.store.Get(e.ctx, name, raftlease.ReadOptions{})
		now := time.Now()
		switch {
		case errors.Is(err, raftlease.ErrNotFound):
			if now.Before(notBefore) {
				e.t.Errorf("lease %q was gone %v before its TTL of %v had passed", name, earliest.Sub(now), ttl)
			}
			e.untrack(name)
			return
		case err != nil:
			e.t.Fatalf("Get(%q) while waiting for expiry: %v", name, err)
		case l.Remaining <= 0:
			e.t.Fatalf("Get(%q) returned a lease with Remaining %v", name, l.Remaining)
		}
		if now.After(limit) {
			e.t.Fatalf("lease %q still live %v after its deadline (%s)", name, now.Sub(earliest), fmtLease(l))
		}
		e.pause(pollEvery)
	}
}

// pause waits d of real time between two polls.
func (e *env) pause(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-e.ctx.Done():
	}
}

// --- Lease checks ---

// checkRemaining checks the Lease contract for a lease returned by a read or
// a write: 0 < Remaining <= TTL.
func checkRemaining(t *testing.T, what string, l raftlease.Lease) {
	t.Helper()
	if l.Remaining <= 0 || l.Remaining > l.TTL {
		t.Errorf("%s: Remaining %v is outside (0, TTL %v]", what, l.Remaining, l.TTL)
	}
}

// diffLease describes how got differs from want in every field except
// Remaining, which moves with time. Nil and empty metadata are equal.
func diffLease(got, want raftlease.Lease) string {
	var d []string
	if got.Name != want.Name {
		d = append(d, fmt.Sprintf("name %q, want %q", got.Name, want.Name))
	}
	if got.Holder != want.Holder {
		d = append(d, fmt.Sprintf("holder %q, want %q", got.Holder, want.Holder))
	}
	if got.Token != want.Token {
		d = append(d, fmt.Sprintf("token %d, want %d", got.Token, want.Token))
	}
	if got.TTL != want.TTL {
		d = append(d, fmt.Sprintf("TTL %v, want %v", got.TTL, want.TTL))
	}
	if !sameMetadata(got.Metadata, want.Metadata) {
		d = append(d, fmt.Sprintf("metadata %v, want %v", got.Metadata, want.Metadata))
	}
	if !got.AcquiredAt.Equal(want.AcquiredAt) {
		d = append(d, fmt.Sprintf("acquired at %v, want %v", got.AcquiredAt, want.AcquiredAt))
	}
	if got.Deadline != want.Deadline {
		d = append(d, fmt.Sprintf("deadline %v, want %v", got.Deadline, want.Deadline))
	}
	if got.Revision != want.Revision {
		d = append(d, fmt.Sprintf("revision %d, want %d", got.Revision, want.Revision))
	}
	return strings.Join(d, "; ")
}

func sameMetadata(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

func fmtLease(l raftlease.Lease) string {
	if l.Name == "" && l.Token == 0 {
		return "no lease"
	}
	return fmt.Sprintf("{%q holder %q token %d ttl %v remaining %v revision %d}", l.Name, l.Holder, l.Token, l.TTL, l.Remaining, l.Revision)
}

func fmtEvent(ev raftlease.Event) string {
	return fmt.Sprintf("%s@%d %s", ev.Type, ev.Revision, fmtLease(ev.Lease))
}
