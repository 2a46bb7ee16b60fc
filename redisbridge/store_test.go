package redisbridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// recorder is a go-redis hook that records every command with its error.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	args []any
	err  error
}

func (r *recorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *recorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		e := cmd.Err()
		if e == nil {
			e = err
		}
		r.mu.Lock()
		r.calls = append(r.calls, call{args: cmd.Args(), err: e})
		r.mu.Unlock()
		return err
	}
}

func (r *recorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		r.mu.Lock()
		for _, cmd := range cmds {
			r.calls = append(r.calls, call{args: cmd.Args(), err: cmd.Err()})
		}
		r.mu.Unlock()
		return err
	}
}

// touching returns the recorded commands that name key as an argument, as
// "COMMAND" or "COMMAND:error prefix".
func (r *recorder) touching(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		found := false
		for _, a := range c.args[1:] {
			if s, ok := a.(string); ok && s == key {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		s := strings.ToUpper(fmt.Sprint(c.args[0]))
		if c.err != nil && !errors.Is(c.err, redis.Nil) {
			code, _, _ := strings.Cut(c.err.Error(), " ")
			s += ":" + code
		}
		out = append(out, s)
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// newRecordedStore returns a store on its own client that records every
// command.
func newRecordedStore(t *testing.T, r *testutil.Redis, opts redisbridge.Options) (*redisbridge.Store, *recorder) {
	t.Helper()
	rec := &recorder{}
	o := r.Options()
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	client := redis.NewClient(o)
	client.AddHook(rec)
	s, err := redisbridge.NewWithClient(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = client.Close()
	})
	return s, rec
}

func TestScriptReloadAfterFlush(t *testing.T) {
	r := testutil.StartRedis(t)
	s, rec := newRecordedStore(t, r, redisbridge.Options{})
	c := ctx(t)
	lease := "raftlease:{job}:lease"

	a, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.touching(lease); len(got) != 1 || got[0] != "EVALSHA" {
		t.Fatalf("first Acquire sent %v, want one EVALSHA (New loaded the scripts)", got)
	}

	if err := r.Client().ScriptFlush(c).Err(); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	b, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: a.Token})
	if err != nil {
		t.Fatalf("Renew after SCRIPT FLUSH: %v", err)
	}
	if b.Token != a.Token {
		t.Errorf("Renew after SCRIPT FLUSH: token %d, want %d", b.Token, a.Token)
	}
	if got, want := rec.touching(lease), []string{"EVALSHA:NOSCRIPT", "EVAL"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Renew after SCRIPT FLUSH sent %v, want %v", got, want)
	}

	// EVAL cached the script again: the next call is one EVALSHA.
	rec.reset()
	if _, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: a.Token}); err != nil {
		t.Fatal(err)
	}
	if got := rec.touching(lease); len(got) != 1 || got[0] != "EVALSHA" {
		t.Errorf("second Renew after SCRIPT FLUSH sent %v, want one EVALSHA", got)
	}
	// Every other script recovers the same way.
	if err := r.Client().ScriptFlush(c).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(c, "job", raftlease.ReadOptions{}); err != nil {
		t.Errorf("Get after SCRIPT FLUSH: %v", err)
	}
	if ls, err := s.List(c, "", raftlease.ReadOptions{}); err != nil || len(ls.Leases) != 1 {
		t.Errorf("List after SCRIPT FLUSH: %v, %v", ls, err)
	}
	if err := s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: "h1", Token: a.Token}); err != nil {
		t.Errorf("Release after SCRIPT FLUSH: %v", err)
	}
}

func TestServerRestart(t *testing.T) {
	r := testutil.StartRedis(t, testutil.RedisOptions{AppendOnly: true})
	s := newStore(t, r, redisbridge.Options{OperationTimeout: 500 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	c := ctx(t)
	a, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, cancel := context.WithCancel(c)
	defer cancel()
	events, err := s.Watch(watchCtx, raftlease.WatchRequest{Name: "job"})
	if err != nil {
		t.Fatal(err)
	}

	r.Stop()
	// While the server is down every call fails with a retryable
	// *UnavailableError; once the pool has no connection left, the outcome
	// is certain: nothing was sent.
	var notApplied bool
	for i := range 5 {
		_, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: a.Token})
		var ue *raftlease.UnavailableError
		if !errors.As(err, &ue) || !raftlease.IsRetryable(err) {
			t.Fatalf("Renew %d while Redis is down: %v, want a retryable *raftlease.UnavailableError", i, err)
		}
		t.Logf("Renew %d while Redis is down: %v", i, err)
		notApplied = notApplied || ue.Outcome == raftlease.OutcomeNotApplied
	}
	if !notApplied {
		t.Errorf("no Renew while Redis is down reported outcome not_applied")
	}
	if _, err := s.Get(c, "job", raftlease.ReadOptions{}); !raftlease.IsRetryable(err) {
		t.Errorf("Get while Redis is down: %v, want a retryable error", err)
	}
	if _, err := s.List(c, "", raftlease.ReadOptions{}); !raftlease.IsRetryable(err) {
		t.Errorf("List while Redis is down: %v, want a retryable error", err)
	}

	r.Restart()
	var b raftlease.Lease
	eventually(t, 10*time.Second, "Renew after the restart", func() bool {
		b, err = s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: a.Token})
		return err == nil
	})
	if b.Token != a.Token {
		t.Errorf("after the restart: token %d, want %d", b.Token, a.Token)
	}
	_, err = s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h2", TTL: time.Minute})
	if !errors.Is(err, raftlease.ErrLeaseHeld) {
		t.Errorf("Acquire by another holder after the restart: %v, want ErrLeaseHeld", err)
	}
	// The watch opened before the restart continues without a gap: the
	// append-only file kept the revision counter and the stream.
	select {
	case ev := <-events:
		if ev.Type != raftlease.EventRenewed || ev.Revision != b.Revision {
			t.Errorf("watch after the restart delivered %v@%d, want renewed@%d", ev.Type, ev.Revision, b.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch opened before the restart delivered nothing after it")
	}
}

// TestRestartWithoutPersistence shows what docs/redis.md warns of: a server
// that loses its data loses the fencing counters too, and only a token floor
// keeps new tokens above the old ones. Open watches learn that history was
// lost.
func TestRestartWithoutPersistence(t *testing.T) {
	r := testutil.StartRedis(t)
	s := newStore(t, r, redisbridge.Options{OperationTimeout: 500 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	c := ctx(t)
	var last raftlease.Lease
	for i := range 3 {
		l, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: fmt.Sprint("h", i), TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: l.Holder, Token: l.Token}); err != nil {
			t.Fatal(err)
		}
		last = l
	}
	watchCtx, cancel := context.WithCancel(c)
	defer cancel()
	events, err := s.Watch(watchCtx, raftlease.WatchRequest{Prefix: ""})
	if err != nil {
		t.Fatal(err)
	}

	r.Restart() // empty: no AOF, no RDB
	var l raftlease.Lease
	eventually(t, 10*time.Second, "Acquire after the restart", func() bool {
		l, err = s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h9", TTL: time.Minute})
		return err == nil
	})
	if l.Token > last.Token {
		t.Errorf("token %d after the data loss; the counter was expected to restart below %d", l.Token, last.Token)
	}
	t.Logf("after losing its data Redis issued token %d again (before: %d)", l.Token, last.Token)

	select {
	case ev, ok := <-events:
		if !ok || ev.Type != raftlease.EventCompacted {
			t.Errorf("watch across the data loss delivered %v (open %v), want EventCompacted", ev.Type, ok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch across the data loss delivered nothing")
	}

	// A token floor (the highest token downstream systems have seen) keeps
	// new tokens above the lost ones.
	if err := s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: l.Holder, Token: l.Token}); err != nil {
		t.Fatal(err)
	}
	f, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h10", TTL: time.Minute, TokenFloor: last.Token})
	if err != nil {
		t.Fatal(err)
	}
	if f.Token <= last.Token {
		t.Errorf("Acquire with TokenFloor %d: token %d", last.Token, f.Token)
	}
}

func TestKeyPrefixIsolation(t *testing.T) {
	r := testutil.StartRedis(t)
	a := newStore(t, r, redisbridge.Options{KeyPrefix: "team-a:"})
	b := newStore(t, r, redisbridge.Options{KeyPrefix: "team-b:"})
	glob := newStore(t, r, redisbridge.Options{KeyPrefix: "t*am?[x]:"}) // glob characters must not match the others
	c := ctx(t)

	wctx, cancel := context.WithCancel(c)
	defer cancel()
	bEvents, err := b.Watch(wctx, raftlease.WatchRequest{Prefix: ""})
	if err != nil {
		t.Fatal(err)
	}

	la, err := a.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "a1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "b1", TTL: time.Minute})
	if err != nil {
		t.Fatalf("the same name under another prefix: %v", err)
	}
	lg, err := glob.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "g1", TTL: time.Minute})
	if err != nil {
		t.Fatalf("the same name under a glob-character prefix: %v", err)
	}
	if la.Token != 1 || lb.Token != 1 || lg.Token != 1 {
		t.Errorf("tokens %d, %d, %d: want 1 each, counters are per prefix", la.Token, lb.Token, lg.Token)
	}
	for _, x := range []struct {
		s      *redisbridge.Store
		holder string
	}{{a, "a1"}, {b, "b1"}, {glob, "g1"}} {
		ls, err := x.s.List(c, "", raftlease.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls.Leases) != 1 || ls.Leases[0].Holder != x.holder {
			t.Errorf("List on %s: %v, want only the lease of %s", x.s.KeyPrefix(), ls.Leases, x.holder)
		}
		exp, err := x.s.Export(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(exp) != 1 || exp[0].Holder != x.holder {
			t.Errorf("Export on %s: %v, want only the lease of %s", x.s.KeyPrefix(), exp, x.holder)
		}
	}
	if err := a.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: "a1", Token: la.Token}); err != nil {
		t.Fatal(err)
	}
	if g, err := b.Get(c, "job", raftlease.ReadOptions{}); err != nil || g.Holder != "b1" {
		t.Errorf("Get on team-b after team-a's release: %v, %v", g, err)
	}
	// b's watch saw b's acquisition only.
	select {
	case ev := <-bEvents:
		if ev.Lease.Holder != "b1" || ev.Type != raftlease.EventAcquired {
			t.Errorf("team-b's watch delivered %v of %s", ev.Type, ev.Lease.Holder)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("team-b's watch delivered nothing")
	}
	select {
	case ev := <-bEvents:
		t.Errorf("team-b's watch delivered another event: %v of %s", ev.Type, ev.Lease.Holder)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestConcurrentAcquirers races holders on three stores, each with its own
// connections, as three processes would.
func TestConcurrentAcquirers(t *testing.T) {
	r := testutil.StartRedis(t)
	stores := []*redisbridge.Store{
		newStore(t, r, redisbridge.Options{}),
		newStore(t, r, redisbridge.Options{}),
		newStore(t, r, redisbridge.Options{}),
	}
	c := ctx(t)
	const perStore = 12
	var last uint64
	for round := range 5 {
		name := "job"
		start := make(chan struct{})
		type result struct {
			lease raftlease.Lease
			err   error
		}
		results := make([]result, len(stores)*perStore)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				l, err := stores[i%len(stores)].Acquire(c, raftlease.AcquireRequest{Name: name, Holder: fmt.Sprintf("h%d-%d", round, i), TTL: time.Minute})
				results[i] = result{l, err}
			})
		}
		close(start)
		wg.Wait()
		var winners []raftlease.Lease
		for _, res := range results {
			if res.err == nil {
				winners = append(winners, res.lease)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, len(winners))
		}
		w := winners[0]
		for i, res := range results {
			var held *raftlease.HeldError
			if res.err != nil && (!errors.As(res.err, &held) || held.Current.Holder != w.Holder || held.Current.Token != w.Token) {
				t.Errorf("round %d: contender %d: %v, want a *HeldError naming %s token %d", round, i, res.err, w.Holder, w.Token)
			}
		}
		if w.Token <= last {
			t.Errorf("round %d: token %d, want above %d", round, w.Token, last)
		}
		last = w.Token
		if err := stores[0].Release(c, raftlease.ReleaseRequest{Name: name, Holder: w.Holder, Token: w.Token}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTokensStrictlyIncreaseAcrossHolders hands a name from holder to holder
// through three stores, by release, by expiry and by token floor.
func TestTokensStrictlyIncreaseAcrossHolders(t *testing.T) {
	r := testutil.StartRedis(t)
	stores := []*redisbridge.Store{
		newStore(t, r, redisbridge.Options{}),
		newStore(t, r, redisbridge.Options{}),
		newStore(t, r, redisbridge.Options{}),
	}
	c := ctx(t)
	var last uint64
	grant := func(i int, req raftlease.AcquireRequest) raftlease.Lease {
		t.Helper()
		l, err := stores[i%3].Acquire(c, req)
		if err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
		if l.Token <= last {
			t.Fatalf("grant %d to %s: token %d, not above %d", i, req.Holder, l.Token, last)
		}
		last = l.Token
		return l
	}
	for i := range 30 {
		holder := fmt.Sprintf("h%d", i%4)
		switch i % 3 {
		case 0: // release
			l := grant(i, raftlease.AcquireRequest{Name: "job", Holder: holder, TTL: time.Minute})
			if err := stores[(i+1)%3].Release(c, raftlease.ReleaseRequest{Name: "job", Holder: holder, Token: l.Token}); err != nil {
				t.Fatal(err)
			}
		case 1: // expiry
			l := grant(i, raftlease.AcquireRequest{Name: "job", Holder: holder, TTL: raftlease.MinTTL})
			eventually(t, 5*time.Second, "expiry", func() bool {
				_, err := stores[(i+2)%3].Get(c, "job", raftlease.ReadOptions{})
				return errors.Is(err, raftlease.ErrNotFound)
			})
			_ = l
		case 2: // token floor
			floor := last + 100
			l := grant(i, raftlease.AcquireRequest{Name: "job", Holder: holder, TTL: time.Minute, TokenFloor: floor})
			if l.Token <= floor {
				t.Fatalf("grant %d with TokenFloor %d: token %d", i, floor, l.Token)
			}
			if err := stores[i%3].Release(c, raftlease.ReleaseRequest{Name: "job", Holder: holder, Token: l.Token}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestUnrecordedExpiryReportedBeforeNextGrant checks the order of events
// when a lease expired in Redis and no store has recorded it yet: the next
// Acquire records the expiry first. (storetest's Expiry/UnremovedInvisible
// checks this on a manual clock, which Redis cannot use.)
func TestUnrecordedExpiryReportedBeforeNextGrant(t *testing.T) {
	r := testutil.StartRedis(t)
	// A manual clock that never moves: the store's expiry loop looks at
	// the deadline index only when a write wakes it, never by timer.
	s := newStore(t, r, redisbridge.Options{Clock: testutil.NewManualClock(), Notifications: redisbridge.NotifyOff})
	c := ctx(t)
	a, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: raftlease.MinTTL})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(c)
	defer cancel()
	events, err := s.Watch(wctx, raftlease.WatchRequest{Name: "job", FromRevision: a.Revision})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Redis expiring the lease", func() bool {
		n, err := r.Client().Exists(c, "raftlease:{job}:lease").Result()
		return err == nil && n == 0
	})
	if n, _ := r.Client().Exists(c, "raftlease:{job}:shadow").Result(); n != 1 {
		t.Fatalf("the expiry was recorded already; the test needs it unrecorded")
	}
	b, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h2", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ raftlease.EventType
		tok uint64
	}{{raftlease.EventAcquired, a.Token}, {raftlease.EventExpired, a.Token}, {raftlease.EventAcquired, b.Token}}
	var prev uint64
	for i, w := range want {
		select {
		case ev := <-events:
			if ev.Type != w.typ || ev.Lease.Token != w.tok || ev.Revision <= prev {
				t.Errorf("event %d: %v token %d rev %d, want %v token %d after rev %d", i, ev.Type, ev.Lease.Token, ev.Revision, w.typ, w.tok, prev)
			}
			prev = ev.Revision
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d (%v) did not come", i, w.typ)
		}
	}
	if prev != b.Revision {
		t.Errorf("the new grant's event has revision %d, the grant %d", prev, b.Revision)
	}
}

func TestWatchCompacted(t *testing.T) {
	r := testutil.StartRedis(t)
	s := newStore(t, r, redisbridge.Options{WatchRetain: 4})
	c := ctx(t)
	var first raftlease.Lease
	for i := range 8 {
		l, err := s.Acquire(c, raftlease.AcquireRequest{Name: fmt.Sprint("n", i), Holder: "h", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = l
		}
	}
	ls, err := s.List(c, "", raftlease.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the store catching up", func() bool {
		_, err := s.Watch(c, raftlease.WatchRequest{FromRevision: ls.Revision - 3})
		return err == nil
	})
	if _, err := s.Watch(c, raftlease.WatchRequest{FromRevision: first.Revision}); !errors.Is(err, raftlease.ErrCompacted) {
		t.Errorf("Watch from revision %d with 4 events retained: %v, want ErrCompacted", first.Revision, err)
	}
	// A new store starts with the stream's recent history.
	s2 := newStore(t, r, redisbridge.Options{WatchRetain: 6})
	w, err := s2.Watch(c, raftlease.WatchRequest{FromRevision: ls.Revision - 5})
	if err != nil {
		t.Fatalf("a new store resuming within the stream's history: %v", err)
	}
	for i := range 6 {
		select {
		case ev := <-w:
			if ev.Revision != ls.Revision-5+uint64(i) {
				t.Errorf("replayed event %d has revision %d, want %d", i, ev.Revision, ls.Revision-5+uint64(i))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("replayed event %d did not come", i)
		}
	}
}

func TestClose(t *testing.T) {
	r := testutil.StartRedis(t)
	s, err := redisbridge.New(redisbridge.Options{Addr: r.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	w, err := s.Watch(c, raftlease.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-w; ok {
		t.Errorf("watch channel still open after Close")
	}
	if _, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute}); !errors.Is(err, raftlease.ErrClosed) {
		t.Errorf("Acquire after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Get(c, "job", raftlease.ReadOptions{}); !errors.Is(err, raftlease.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Watch(c, raftlease.WatchRequest{}); !errors.Is(err, raftlease.ErrClosed) {
		t.Errorf("Watch after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Export(c); !errors.Is(err, raftlease.ErrClosed) {
		t.Errorf("Export after Close: %v, want ErrClosed", err)
	}
}

// TestUnreachableServer: New does not wait for Redis, and calls to a server
// that never answered fail as certainly not applied.
func TestUnreachableServer(t *testing.T) {
	s := newStore(t, nil, redisbridge.Options{Addr: "127.0.0.1:1", OperationTimeout: 300 * time.Millisecond})
	c := ctx(t)
	_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute})
	if !raftlease.IsRetryable(err) || raftlease.OutcomeOf(err) != raftlease.OutcomeNotApplied {
		t.Errorf("Acquire on an unreachable server: %v (outcome %v), want retryable, not_applied", err, raftlease.OutcomeOf(err))
	}
	if _, err := s.Watch(c, raftlease.WatchRequest{}); !raftlease.IsRetryable(err) {
		t.Errorf("Watch before the store ever reached Redis: %v, want retryable", err)
	}
	cancelled, cancel := context.WithCancel(c)
	cancel()
	if _, err := s.Acquire(cancelled, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute}); raftlease.OutcomeOf(err) != raftlease.OutcomeNotApplied || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled ctx: %v, want not_applied matching context.Canceled", err)
	}
}

func TestAuth(t *testing.T) {
	r := testutil.StartRedis(t, testutil.RedisOptions{Password: "s3cret"})
	c := ctx(t)
	s := newStore(t, r, redisbridge.Options{Password: "s3cret"})
	if _, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute}); err != nil {
		t.Fatalf("Acquire with the password: %v", err)
	}
	bad := newStore(t, r, redisbridge.Options{Password: "wrong"})
	_, err := bad.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute})
	if err == nil || raftlease.IsRetryable(err) {
		t.Errorf("Acquire with a wrong password: %v, want a non-retryable error", err)
	}
}

func TestSentinel(t *testing.T) {
	master := testutil.StartRedis(t)
	sentinel := testutil.StartRedis(t, testutil.RedisOptions{SentinelFor: master})
	s := newStore(t, nil, redisbridge.Options{MasterName: testutil.SentinelMasterName, SentinelAddrs: []string{sentinel.Addr()}, DB: 3})
	c := ctx(t)
	l, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute})
	if err != nil {
		t.Fatalf("Acquire through Sentinel: %v", err)
	}
	o := master.Options()
	o.DB = 3
	direct := redis.NewClient(o)
	defer direct.Close()
	if n, err := direct.Exists(c, "raftlease:{job}:lease").Result(); err != nil || n != 1 {
		t.Errorf("the lease is not in DB 3 of the master: %d, %v", n, err)
	}
	if err := s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: "h", Token: l.Token}); err != nil {
		t.Fatal(err)
	}
}
