package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/raftlease/raftlease"
)

type badString struct{ what, s string }

type badTTL struct {
	what string
	ttl  time.Duration
}

type badMetadata struct {
	what string
	md   map[string]string
}

// badNames are lease names every store refuses. Where possible they start
// with the subtest's prefix, so List shows one a store wrongly accepts.
func (e *env) badNames() []badString {
	return []badString{
		{"empty name", ""},
		{"name over MaxNameLen", e.prefix + strings.Repeat("x", raftlease.MaxNameLen+1-len(e.prefix))},
		{"name with a space", e.name("has space")},
		{"name with braces", e.name("hash{tag}")},
		{"name with a non-ASCII letter", e.name("ümlaut")},
		{"name with NUL", e.name("nul\x00")},
		{"name with a newline", e.name("line\n")},
		{"name with a percent sign", e.name("100%25")},
		{"name with a question mark", e.name("a?b=c")},
		{"name with a star", e.name("a*")},
	}
}

// badPrefixes are List and Watch prefixes every store refuses.
func (e *env) badPrefixes() []badString {
	return []badString{
		{"prefix over MaxNameLen", e.prefix + strings.Repeat("x", raftlease.MaxNameLen+1-len(e.prefix))},
		{"prefix with a space", e.name("has space")},
		{"prefix with braces", e.name("{x}")},
		{"prefix with a non-ASCII letter", "ü"},
		{"prefix with a star", e.name("*")},
	}
}

var badHolders = []badString{
	{"empty holder", ""},
	{"holder with a space", "holder 1"},
	{"holder with a tab", "holder\t1"},
	{"holder over MaxHolderLen", strings.Repeat("h", raftlease.MaxHolderLen+1)},
	{"holder with a control character", "holder\x01"},
	{"holder of invalid UTF-8", "holder\xff"},
}

// badTTLs are refused for Acquire, and for Renew (where zero means "keep").
var badTTLs = []badTTL{
	{"negative TTL", -time.Second},
	{"TTL of 1ms", time.Millisecond},
	{"TTL 1ns below MinTTL", raftlease.MinTTL - time.Nanosecond},
	{"TTL 1ns above MaxTTL", raftlease.MaxTTL + time.Nanosecond},
	{"TTL 1ms above MaxTTL", raftlease.MaxTTL + time.Millisecond},
}

func badMetadatas() []badMetadata {
	tooMany := map[string]string{}
	for i := range raftlease.MaxMetadataKeys + 1 {
		tooMany[fmt.Sprintf("k%02d", i)] = "v"
	}
	tooBig := map[string]string{}
	for i := range 5 { // 5 × 1001 bytes > MaxMetadataSize, each value within its limit
		tooBig[fmt.Sprint(i)] = strings.Repeat("v", 1000)
	}
	return []badMetadata{
		{"metadata over MaxMetadataKeys", tooMany},
		{"metadata key over MaxMetadataKeyLen", map[string]string{strings.Repeat("k", raftlease.MaxMetadataKeyLen+1): "v"}},
		{"metadata value over MaxMetadataValueLen", map[string]string{"k": strings.Repeat("v", raftlease.MaxMetadataValueLen+1)}},
		{"metadata over MaxMetadataSize", tooBig},
		{"metadata with an empty key", map[string]string{"": "v"}},
		{"metadata key with a space", map[string]string{"a b": "v"}},
		{"metadata key with a non-ASCII letter", map[string]string{"ü": "v"}},
		{"metadata value with a control character", map[string]string{"k": "a\x07b"}},
		{"metadata value of invalid UTF-8", map[string]string{"k": "\xff"}},
	}
}

// invalidFixture holds a lease, so an invalid request a store wrongly
// applied would show as a change, and records the state to compare with.
type invalidFixture struct {
	held   raftlease.Lease
	before []raftlease.Lease
}

func (e *env) invalidFixture() invalidFixture {
	e.t.Helper()
	held := e.acquire(raftlease.AcquireRequest{Name: e.name("held"), Holder: "holder-1", TTL: holdTTL, Metadata: map[string]string{"v": "1"}})
	return invalidFixture{held: held, before: e.list(e.prefix).Leases}
}

// checkUnchanged checks that the subtest's leases are exactly as before.
func (e *env) checkUnchanged(f invalidFixture) {
	e.t.Helper()
	after := e.list(e.prefix).Leases
	if len(after) != len(f.before) {
		e.t.Errorf("invalid requests changed the store: List shows %q, want %q", names(after), names(f.before))
		return
	}
	for i := range after {
		if d := diffLease(after[i], f.before[i]); d != "" {
			e.t.Errorf("invalid requests changed lease %q: %s", after[i].Name, d)
		}
	}
}

func (e *env) wantInvalid(err error, format string, args ...any) {
	e.t.Helper()
	e.wantErr(err, raftlease.ErrInvalidArgument, format, args...)
}

// testInvalidAcquire: Acquire refuses bad names, holders, TTLs and metadata
// with ErrInvalidArgument and changes nothing, also for the holder of a
// lease (where a wrongly accepted request would re-acquire it).
func testInvalidAcquire(e *env) {
	f := e.invalidFixture()
	free := e.name("free")
	acquire := func(what string, req raftlease.AcquireRequest) {
		e.t.Helper()
		_, err := e.tryAcquire(req)
		e.wantInvalid(err, "Acquire with %s", what)
	}
	for _, b := range e.badNames() {
		acquire(b.what, raftlease.AcquireRequest{Name: b.s, Holder: "holder-1", TTL: holdTTL})
	}
	for _, b := range badHolders {
		acquire(b.what, raftlease.AcquireRequest{Name: free, Holder: b.s, TTL: holdTTL})
	}
	for _, b := range append(badTTLs, badTTL{"zero TTL", 0}) {
		acquire(b.what+" on a free name", raftlease.AcquireRequest{Name: free, Holder: "holder-1", TTL: b.ttl})
		acquire(b.what+" by the holder", raftlease.AcquireRequest{Name: f.held.Name, Holder: f.held.Holder, TTL: b.ttl})
	}
	for _, b := range badMetadatas() {
		acquire(b.what+" on a free name", raftlease.AcquireRequest{Name: free, Holder: "holder-1", TTL: holdTTL, Metadata: b.md})
		acquire(b.what+" by the holder", raftlease.AcquireRequest{Name: f.held.Name, Holder: f.held.Holder, TTL: holdTTL, Metadata: b.md})
	}
	e.gone(free)
	e.checkUnchanged(f)
}

// testInvalidRenew: Renew refuses bad input with ErrInvalidArgument, not
// ErrNotHolder, even from the holder, and changes nothing.
func testInvalidRenew(e *env) {
	f := e.invalidFixture()
	h := f.held
	renew := func(what string, req raftlease.RenewRequest) {
		e.t.Helper()
		_, err := e.tryRenew(req)
		e.wantInvalid(err, "Renew with %s", what)
	}
	for _, b := range e.badNames() {
		renew(b.what, raftlease.RenewRequest{Name: b.s, Holder: h.Holder, Token: h.Token})
	}
	for _, b := range badHolders {
		renew(b.what, raftlease.RenewRequest{Name: h.Name, Holder: b.s, Token: h.Token})
	}
	renew("token 0", raftlease.RenewRequest{Name: h.Name, Holder: h.Holder, Token: 0})
	for _, b := range badTTLs {
		renew(b.what, raftlease.RenewRequest{Name: h.Name, Holder: h.Holder, Token: h.Token, TTL: b.ttl})
	}
	for _, b := range badMetadatas() {
		renew(b.what, raftlease.RenewRequest{Name: h.Name, Holder: h.Holder, Token: h.Token, Metadata: b.md})
	}
	e.checkUnchanged(f)
}

// testInvalidRelease: Release refuses bad input with ErrInvalidArgument and
// releases nothing.
func testInvalidRelease(e *env) {
	f := e.invalidFixture()
	h := f.held
	release := func(what string, req raftlease.ReleaseRequest) {
		e.t.Helper()
		e.wantInvalid(e.tryRelease(req), "Release with %s", what)
	}
	for _, b := range e.badNames() {
		release(b.what, raftlease.ReleaseRequest{Name: b.s, Holder: h.Holder, Token: h.Token})
	}
	for _, b := range badHolders {
		release(b.what, raftlease.ReleaseRequest{Name: h.Name, Holder: b.s, Token: h.Token})
	}
	release("token 0", raftlease.ReleaseRequest{Name: h.Name, Holder: h.Holder, Token: 0})
	e.checkUnchanged(f)
}

// testInvalidGet: Get refuses bad names with ErrInvalidArgument, not
// ErrNotFound.
func testInvalidGet(e *env) {
	f := e.invalidFixture()
	for _, b := range e.badNames() {
		l, err := e.store.Get(e.ctx, b.s, raftlease.ReadOptions{})
		e.wantInvalid(err, "Get with %s (got %s)", b.what, fmtLease(l))
		_, err = e.store.Get(e.ctx, b.s, raftlease.ReadOptions{Stale: true})
		e.wantInvalid(err, "stale Get with %s", b.what)
	}
	e.checkUnchanged(f)
}

// testInvalidList: List refuses bad prefixes with ErrInvalidArgument.
func testInvalidList(e *env) {
	f := e.invalidFixture()
	for _, b := range e.badPrefixes() {
		ls, err := e.store.List(e.ctx, b.s, raftlease.ReadOptions{})
		e.wantInvalid(err, "List with %s (got %d leases)", b.what, len(ls.Leases))
		_, err = e.store.List(e.ctx, b.s, raftlease.ReadOptions{Stale: true})
		e.wantInvalid(err, "stale List with %s", b.what)
	}
	e.checkUnchanged(f)
}

// testInvalidWatch: Watch refuses bad requests with ErrInvalidArgument at
// once, rather than with a channel that closes.
func testInvalidWatch(e *env) {
	f := e.invalidFixture()
	reqs := []struct {
		what string
		req  raftlease.WatchRequest
	}{
		{"both Name and Prefix", raftlease.WatchRequest{Name: f.held.Name, Prefix: e.prefix}},
	}
	for _, b := range e.badNames()[1:] { // the empty name means "use Prefix"
		reqs = append(reqs, struct {
			what string
			req  raftlease.WatchRequest
		}{b.what, raftlease.WatchRequest{Name: b.s}})
	}
	for _, b := range e.badPrefixes() {
		reqs = append(reqs, struct {
			what string
			req  raftlease.WatchRequest
		}{b.what, raftlease.WatchRequest{Prefix: b.s}})
	}
	for _, r := range reqs {
		ctx, cancel := context.WithCancel(e.ctx)
		ch, err := e.store.Watch(ctx, r.req)
		cancel()
		if !errors.Is(err, raftlease.ErrInvalidArgument) {
			e.t.Errorf("Watch with %s: got error %v (channel %v), want one matching ErrInvalidArgument", r.what, err, ch != nil)
		}
		if err == nil && ch != nil {
			e.awaitClosed(ch, "Watch with "+r.what)
		}
	}
	e.checkUnchanged(f)
}

// testLimitsAccepted: input exactly at the limits is accepted and round-trips.
func testLimitsAccepted(e *env) {
	t := e.t
	keys := map[string]string{}
	for i := range raftlease.MaxMetadataKeys {
		keys[fmt.Sprintf("k%02d", i)] = fmt.Sprint(i)
	}
	size := map[string]string{} // 4 × (64 + 960) = MaxMetadataSize
	for i := range 4 {
		size[fmt.Sprint(i)+strings.Repeat("k", raftlease.MaxMetadataKeyLen-1)] = strings.Repeat("v", raftlease.MaxMetadataSize/4-raftlease.MaxMetadataKeyLen)
	}
	cases := []struct {
		what string
		req  raftlease.AcquireRequest
	}{
		{"name of MaxNameLen bytes", raftlease.AcquireRequest{Name: e.prefix + strings.Repeat("n", raftlease.MaxNameLen-len(e.prefix)), Holder: "holder-1", TTL: holdTTL}},
		{"name with every punctuation allowed", raftlease.AcquireRequest{Name: e.name("Az09-_.:/@=+"), Holder: "holder-1", TTL: holdTTL}},
		{"holder of MaxHolderLen bytes", raftlease.AcquireRequest{Name: e.name("long-holder"), Holder: strings.Repeat("h", raftlease.MaxHolderLen), TTL: holdTTL}},
		{"holder with non-ASCII letters and symbols", raftlease.AcquireRequest{Name: e.name("unicode-holder"), Holder: "hölder/1@host:80#✓", TTL: holdTTL}},
		{"MaxMetadataKeys keys", raftlease.AcquireRequest{Name: e.name("many-keys"), Holder: "holder-1", TTL: holdTTL, Metadata: keys}},
		{"metadata of MaxMetadataSize bytes", raftlease.AcquireRequest{Name: e.name("big-metadata"), Holder: "holder-1", TTL: holdTTL, Metadata: size}},
		{"metadata value of MaxMetadataValueLen bytes", raftlease.AcquireRequest{Name: e.name("long-value"), Holder: "holder-1", TTL: holdTTL,
			Metadata: map[string]string{"k": strings.Repeat("é", raftlease.MaxMetadataValueLen/2)}}},
		{"TTL of MaxTTL", raftlease.AcquireRequest{Name: e.name("max-ttl"), Holder: "holder-1", TTL: raftlease.MaxTTL}},
	}
	for _, c := range cases {
		l, err := e.tryAcquire(c.req)
		if err != nil {
			t.Errorf("Acquire with %s: %v", c.what, err)
			continue
		}
		if l.TTL != c.req.TTL || l.Holder != c.req.Holder || !sameMetadata(l.Metadata, c.req.Metadata) {
			t.Errorf("Acquire with %s: got %s metadata of %d keys, want what was asked", c.what, fmtLease(l), len(l.Metadata))
		}
		if d := diffLease(e.get(l.Name), l); d != "" {
			t.Errorf("Get after Acquire with %s: %s", c.what, d)
		}
	}

	// MinTTL is accepted; the lease may be gone at once on real time, so
	// only the grant is checked.
	l, err := e.tryAcquire(raftlease.AcquireRequest{Name: e.name("min-ttl"), Holder: "holder-1", TTL: raftlease.MinTTL})
	if err != nil {
		t.Errorf("Acquire with TTL of MinTTL: %v", err)
	} else if l.TTL != raftlease.MinTTL {
		t.Errorf("Acquire with TTL of MinTTL: TTL %v", l.TTL)
	}

	// Renew accepts the TTL limits too.
	m, err := e.tryAcquire(raftlease.AcquireRequest{Name: e.name("renew-limits"), Holder: "holder-1", TTL: holdTTL})
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	for _, ttl := range []time.Duration{raftlease.MaxTTL, raftlease.MinTTL} {
		r, err := e.tryRenew(raftlease.RenewRequest{Name: m.Name, Holder: m.Holder, Token: m.Token, TTL: ttl})
		if err != nil {
			t.Errorf("Renew with TTL %v: %v", ttl, err)
		} else if r.TTL != ttl {
			t.Errorf("Renew with TTL %v: TTL %v", ttl, r.TTL)
		}
	}
}
