package redisbridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
)

// ExportedLease is one name of a store as Export found it: its live lease,
// if any, and its fencing counter.
type ExportedLease struct {
	// Name is the lease name.
	Name string
	// Holder, Token, TTL, Remaining and Metadata describe the live lease.
	// Holder is empty when the name has no live lease; the other fields
	// are then zero.
	Holder    string
	Token     uint64
	TTL       time.Duration
	Remaining time.Duration
	Metadata  map[string]string
	// CounterValue is the name's fencing counter: the largest token Redis
	// ever issued for it (or the last token floor it was raised to). A
	// store migrated to must issue only tokens above it: pass it as
	// AcquireRequest.TokenFloor.
	CounterValue uint64
}

// Live reports whether the name had a live lease.
func (e ExportedLease) Live() bool { return e.Holder != "" }

// exportChunk is how many names one MULTI reads.
const exportChunk = 200

// Export lists every name of the store that has a fencing counter, sorted
// by name: the live leases with their remaining TTL, and the free names,
// whose counters must carry over to another store as much as the live
// ones' do. It finds the names with SCAN (on every master of a Cluster)
// and reads each name's lease, expiry and counter at one instant, but the
// listing as a whole is not one instant: stop the writers, or rely on the
// token floors being taken after the last write, when migrating.
//
// It is the source for `leasenode migrate --from-redis`.
func (s *Store) Export(ctx context.Context) ([]ExportedLease, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("%w: redisbridge: export", raftlease.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, notSent("export", err)
	}
	keys, err := s.scanKeys(ctx, s.keys.pattern(tokenSuffix))
	if err != nil {
		return nil, mapError("export", nil, err)
	}
	var names []string
	for _, k := range keys {
		if name, ok := s.keys.nameOf(k, tokenSuffix); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)

	out := make([]ExportedLease, 0, len(names))
	for chunk := range slices.Chunk(names, exportChunk) {
		got, err := s.exportChunk(ctx, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (s *Store) exportChunk(ctx context.Context, names []string) ([]ExportedLease, error) {
	ctx, cancel, err := s.begin(ctx, "export")
	defer cancel()
	if err != nil {
		return nil, err
	}
	type cmds struct {
		fields *redis.MapStringStringCmd
		pttl   *redis.DurationCmd
		token  *redis.StringCmd
	}
	cs := make([]cmds, len(names))
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cs[i] = cmds{
				fields: p.HGetAll(ctx, s.keys.lease(n)),
				pttl:   p.PTTL(ctx, s.keys.lease(n)),
				token:  p.Get(ctx, s.keys.token(n)),
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, mapError("export", nil, err)
	}
	out := make([]ExportedLease, 0, len(names))
	for i, n := range names {
		tokenKey := s.keys.token(n)
		v, err := cs[i].token.Result()
		if errors.Is(err, redis.Nil) {
			continue // the key went away since SCAN found it
		}
		if err != nil {
			return nil, mapError("export", []string{tokenKey}, err)
		}
		counter, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, malformed(tokenKey, "counter %q is not an unsigned integer", v)
		}
		e := ExportedLease{Name: n, CounterValue: counter}
		leaseKey := s.keys.lease(n)
		f, err := cs[i].fields.Result()
		if err != nil {
			return nil, mapError("export", []string{leaseKey}, err)
		}
		pttl, err := cs[i].pttl.Result()
		if err != nil {
			return nil, mapError("export", []string{leaseKey}, err)
		}
		if len(f) > 0 && pttl > 0 {
			if f["v"] != formatVersion {
				return nil, malformed(leaseKey, "format version %q, want %q", f["v"], formatVersion)
			}
			r := rawLease{holder: f["holder"], token: f["token"], ttlNs: f["ttl_ns"], metadata: f["metadata"],
				acquiredMs: f["acquired_ms"], deadlineMs: f["deadline_ms"], revision: f["revision"]}
			l, err := r.lease(leaseKey, n, pttl)
			if err != nil {
				return nil, err
			}
			e.Holder, e.Token, e.TTL, e.Remaining, e.Metadata = l.Holder, l.Token, l.TTL, l.Remaining, l.Metadata
			e.CounterValue = max(e.CounterValue, l.Token)
		} else if len(f) > 0 && pttl == -1 {
			return nil, malformed(leaseKey, "lease has no expiry")
		}
		out = append(out, e)
	}
	return out, nil
}

// scanKeys returns the keys matching pattern, with SCAN on a standalone
// server or on every master of a Cluster.
func (s *Store) scanKeys(ctx context.Context, pattern string) ([]string, error) {
	scan := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var out []string
		var cursor uint64
		for {
			sctx, cancel := context.WithTimeout(ctx, s.opts.OperationTimeout)
			keys, next, err := c.Scan(sctx, cursor, pattern, 1000).Result()
			cancel()
			if err != nil {
				return nil, err
			}
			out = append(out, keys...)
			if next == 0 {
				return out, nil
			}
			cursor = next
		}
	}
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, s.client)
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := scan(ctx, c)
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	return all, err
}
