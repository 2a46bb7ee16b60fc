package redisbridge_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/testutil"
)

// dumpPrefix returns every key under prefix with its DUMP serialisation
// and remaining TTL rounded to the second, to compare the keyspace before
// and after.
func dumpPrefix(t *testing.T, c *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		ttl, _ := c.PTTL(ctx, k).Result()
		out[k] = fmt.Sprintf("%x ttl>0=%v", d, ttl > 0)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// validLease writes the fields of a well-formed lease hash, with edits.
func validLease(edit func(map[string]any)) map[string]any {
	now := time.Now().UnixMilli()
	f := map[string]any{
		"v": "1", "holder": "h1", "token": "1", "ttl_ns": fmt.Sprint(int64(time.Minute)), "metadata": `{"a":"b"}`,
		"acquired_ms": fmt.Sprint(now), "deadline_ms": fmt.Sprint(now + 60000), "revision": "1",
	}
	if edit != nil {
		edit(f)
	}
	return f
}

// TestMalformedValues writes data the bridge did not write into its keys
// and checks that every operation reads it as an error matching
// ErrMalformed (never a panic, never a silent overwrite), and that the
// keyspace is left exactly as it was.
func TestMalformedValues(t *testing.T) {
	r := testutil.StartRedis(t)
	rc := r.Client()
	const (
		acq = "acquire"
		ren = "renew"
		rel = "release"
		get = "get"
		lst = "list"
		exp = "export"
	)
	all := []string{acq, ren, rel, get, lst, exp}
	hset := func(key string, ttl time.Duration, edit func(map[string]any)) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if err := rc.Del(ctx, key).Err(); err != nil {
				return err
			}
			if err := rc.HSet(ctx, key, validLease(edit)).Err(); err != nil {
				return err
			}
			if ttl > 0 {
				return rc.PExpire(ctx, key, ttl).Err()
			}
			return nil
		}
	}
	cases := []struct {
		name string
		// setup writes the garbage under prefix P for lease name "job".
		setup     func(p string) func(ctx context.Context) error
		malformed []string // operations that must report it
	}{
		{"lease key is a string", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"{job}:lease", "garbage", time.Minute).Err() }
		}, all},
		{"lease key is a list", func(p string) func(context.Context) error {
			return func(ctx context.Context) error {
				return errors.Join(rc.Del(ctx, p+"{job}:lease").Err(), rc.RPush(ctx, p+"{job}:lease", "x").Err())
			}
		}, all},
		{"lease hash without expiry", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", 0, nil)
		}, all},
		{"lease hash with a bad token", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["token"] = "abc" })
		}, all},
		{"lease hash with token 0", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["token"] = "0" })
		}, all},
		{"lease hash of another format version", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["v"] = "2" })
		}, all},
		{"lease hash without a holder", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["holder"] = "" })
		}, all},
		{"lease hash with an invalid holder", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["holder"] = "has space" })
		}, []string{acq, get, lst, exp}},
		{"lease hash with metadata that is not JSON", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["metadata"] = "{not json" })
		}, all},
		{"lease hash with a TTL out of range", func(p string) func(context.Context) error {
			return hset(p+"{job}:lease", time.Minute, func(f map[string]any) { f["ttl_ns"] = "1" })
		}, all},
		{"token counter is not a number", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"{job}:token", "abc", 0).Err() }
		}, []string{acq, exp}},
		{"token counter is negative", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"{job}:token", "-5", 0).Err() }
		}, []string{acq, exp}},
		{"token counter is a hash", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.HSet(ctx, p+"{job}:token", "a", "b").Err() }
		}, []string{acq, exp}},
		{"shadow is a string", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"{job}:shadow", "x", 0).Err() }
		}, []string{acq, ren, rel}},
		{"revision counter is not a number", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"revision", "x", 0).Err() }
		}, []string{acq, ren, rel, lst}},
		{"name index is a string", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"names", "x", 0).Err() }
		}, []string{acq, ren, rel, lst}},
		{"deadline index is a string", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"deadlines", "x", 0).Err() }
		}, []string{acq, ren, rel}},
		{"event stream is a string", func(p string) func(context.Context) error {
			return func(ctx context.Context) error { return rc.Set(ctx, p+"events", "x", 0).Err() }
		}, []string{acq, ren, rel}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("case%d:", i)
			c := ctx(t)
			s := newStore(t, r, redisbridge.Options{KeyPrefix: prefix})
			if strings.HasPrefix(tc.name, "lease ") {
				// Damage a lease the bridge granted, with its counter,
				// shadow and index entries in place.
				if _, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.setup(prefix)(c); err != nil {
				t.Fatal(err)
			}
			before := dumpPrefix(t, rc, prefix)

			ops := map[string]func() error{
				acq: func() error {
					_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h2", TTL: time.Minute})
					return err
				},
				ren: func() error {
					_, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: 1, TTL: time.Hour})
					return err
				},
				rel: func() error { return s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: "h1", Token: 1}) },
				get: func() error { _, err := s.Get(c, "job", raftlease.ReadOptions{}); return err },
				lst: func() error { _, err := s.List(c, "", raftlease.ReadOptions{}); return err },
				exp: func() error { _, err := s.Export(c); return err },
			}
			for _, op := range slices.Sorted(maps.Keys(ops)) {
				err := ops[op]()
				var me *redisbridge.MalformedError
				switch {
				case slices.Contains(tc.malformed, op):
					if !errors.Is(err, redisbridge.ErrMalformed) || !errors.As(err, &me) {
						t.Errorf("%s: %v, want a *MalformedError", op, err)
					} else {
						t.Logf("%s: %v", op, err)
						if me.Key != "" && !strings.HasPrefix(me.Key, prefix) {
							t.Errorf("%s: the error names key %q, outside the store", op, me.Key)
						}
					}
				case err != nil && !errors.Is(err, raftlease.ErrNotHolder) && !errors.Is(err, raftlease.ErrNotFound) && !errors.Is(err, raftlease.ErrLeaseHeld):
					t.Errorf("%s: unexpected error %v", op, err)
				}
				if raftlease.IsRetryable(err) {
					t.Errorf("%s: %v is retryable; retrying cannot repair data", op, err)
				}
			}
			// Let the background loops run over the garbage too.
			time.Sleep(300 * time.Millisecond)
			after := dumpPrefix(t, rc, prefix)
			if !maps.Equal(before, after) {
				t.Errorf("the keyspace changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestMalformedStreamEntry: an entry in the event stream the bridge did not
// write is skipped; watches go on.
func TestMalformedStreamEntry(t *testing.T) {
	r := testutil.StartRedis(t)
	s := newStore(t, r, redisbridge.Options{})
	c := ctx(t)
	w, err := s.Watch(c, raftlease.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Client().XAdd(c, &redis.XAddArgs{Stream: "raftlease:events", Values: []any{"type", "bogus", "rev", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w:
		if ev.Type != raftlease.EventAcquired || ev.Revision != l.Revision {
			t.Errorf("watch delivered %v@%d, want acquired@%d", ev.Type, ev.Revision, l.Revision)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after a malformed stream entry")
	}
}

// TestBadInputChangesNothing: invalid requests are refused with
// ErrInvalidArgument before any Redis call about the lease, and change
// nothing.
func TestBadInputChangesNothing(t *testing.T) {
	r := testutil.StartRedis(t)
	s, rec := newRecordedStore(t, r, redisbridge.Options{})
	c := ctx(t)
	held, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Minute, Metadata: map[string]string{"v": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	before := dumpPrefix(t, r.Client(), "raftlease:")
	rec.reset()

	long := strings.Repeat("x", raftlease.MaxNameLen+1)
	bad := []struct {
		what string
		call func() error
	}{
		{"Acquire with an empty name", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Holder: "h1", TTL: time.Minute})
			return err
		}},
		{"Acquire with braces in the name", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "a{b}", Holder: "h1", TTL: time.Minute})
			return err
		}},
		{"Acquire with a glob in the name", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "jo*", Holder: "h1", TTL: time.Minute})
			return err
		}},
		{"Acquire with a long name", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: long, Holder: "h1", TTL: time.Minute})
			return err
		}},
		{"re-Acquire with a TTL below MinTTL", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Millisecond})
			return err
		}},
		{"re-Acquire with bad metadata", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "job", Holder: "h1", TTL: time.Minute, Metadata: map[string]string{"a b": "c"}})
			return err
		}},
		{"Acquire with a token floor a Redis counter cannot pass", func() error {
			_, err := s.Acquire(c, raftlease.AcquireRequest{Name: "other", Holder: "h1", TTL: time.Minute, TokenFloor: 1<<63 - 1})
			return err
		}},
		{"Renew with token 0", func() error {
			_, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1"})
			return err
		}},
		{"Renew with a TTL above MaxTTL", func() error {
			_, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h1", Token: held.Token, TTL: raftlease.MaxTTL + time.Nanosecond})
			return err
		}},
		{"Renew with a bad holder", func() error {
			_, err := s.Renew(c, raftlease.RenewRequest{Name: "job", Holder: "h 1", Token: held.Token})
			return err
		}},
		{"Release with token 0", func() error { return s.Release(c, raftlease.ReleaseRequest{Name: "job", Holder: "h1"}) }},
		{"Get with a bad name", func() error { _, err := s.Get(c, "j?b", raftlease.ReadOptions{}); return err }},
		{"List with a bad prefix", func() error { _, err := s.List(c, "[a]", raftlease.ReadOptions{}); return err }},
		{"Watch with a name and a prefix", func() error {
			_, err := s.Watch(c, raftlease.WatchRequest{Name: "job", Prefix: "j"})
			return err
		}},
	}
	for _, b := range bad {
		if err := b.call(); !errors.Is(err, raftlease.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", b.what, err)
		}
	}
	rec.mu.Lock()
	for _, cl := range rec.calls {
		for _, a := range cl.args {
			if s, ok := a.(string); ok && strings.Contains(s, "}:") {
				t.Errorf("an invalid request reached Redis: %v", cl.args)
				break
			}
		}
	}
	rec.mu.Unlock()
	if after := dumpPrefix(t, r.Client(), "raftlease:"); !maps.Equal(before, after) {
		t.Errorf("invalid requests changed the keyspace:\nbefore %v\nafter  %v", before, after)
	}
	g, err := s.Get(c, "job", raftlease.ReadOptions{})
	if err != nil || g.Revision != held.Revision || g.Token != held.Token {
		t.Errorf("after the invalid requests: %v, %v; want the lease unchanged", g, err)
	}
}
