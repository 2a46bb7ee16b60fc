package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/raftlease/raftlease"
)

// The lease commands: parse, call the client, print. The store decides
// everything.

func nameArg(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("%s: the lease NAME is required", cmd)
	case 1:
		if err := raftlease.ValidateName(pos[0]); err != nil {
			return "", usagef("%s: NAME %q: %s", cmd, pos[0], fieldReason(err))
		}
		return pos[0], nil
	}
	return "", usagef("%s: unexpected argument %q after NAME", cmd, pos[1])
}

func requireHolder(cmd, holder string) error {
	if holder == "" {
		return usagef("%s: --holder is required", cmd)
	}
	if err := raftlease.ValidateHolder(holder); err != nil {
		return usagef("%s: --holder %q: %s", cmd, holder, fieldReason(err))
	}
	return nil
}

func parseToken(cmd, s string) (uint64, error) {
	if s == "" {
		return 0, usagef("%s: --token (the fencing token) is required", cmd)
	}
	t, err := strconv.ParseUint(s, 10, 64)
	if err != nil || t == 0 {
		return 0, usagef("%s: --token %q is not a fencing token (a positive integer)", cmd, s)
	}
	return t, nil
}

// report prints err in -o json mode and returns it for the exit status.
func (g *globalFlags) report(err error) error {
	if err != nil {
		g.printError(err)
	}
	return err
}

func cmdAcquire(g *globalFlags, args []string) error {
	fs := g.commandFlags("acquire", true)
	holder := fs.String("holder", "", "holder id (required)")
	ttl := fs.Duration("ttl", 10*time.Second, "lease TTL, within [100ms, 24h]")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata key=value (repeatable)")
	floor := fs.Uint64("token-floor", 0, "a new token is above this (to carry a counter from another store over, as migrate and a rollback do)")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	name, err := nameArg("acquire", pos)
	if err != nil {
		return err
	}
	if err := requireHolder("acquire", *holder); err != nil {
		return err
	}
	if err := raftlease.ValidateTTL(*ttl); err != nil {
		return usagef("acquire: --ttl: %s", fieldReason(err))
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	req := raftlease.AcquireRequest{Name: name, Holder: *holder, TTL: *ttl, TokenFloor: *floor}
	if len(meta) > 0 {
		req.Metadata = meta
	}
	lease, err := c.Acquire(ctx, req)
	var held *raftlease.HeldError
	if errors.As(err, &held) && !g.json() {
		fmt.Fprintf(g.stderr, "leasenode acquire: %s is held by %s (token %d, %v left)\n", name, held.Current.Holder, held.Current.Token, held.Current.Remaining.Round(time.Millisecond))
		return &quietError{err}
	}
	if err != nil {
		return g.report(err)
	}
	return g.printLease(lease)
}

func cmdRenew(g *globalFlags, args []string) error {
	fs := g.commandFlags("renew", false)
	holder := fs.String("holder", "", "holder id (required)")
	token := fs.String("token", "", "the lease's fencing token (required); the auth token is --auth-token here")
	ttl := fs.Duration("ttl", 0, "new TTL (default: keep the lease's)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "replace the metadata with key=value pairs (repeatable)")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	name, err := nameArg("renew", pos)
	if err != nil {
		return err
	}
	if err := requireHolder("renew", *holder); err != nil {
		return err
	}
	tok, err := parseToken("renew", *token)
	if err != nil {
		return err
	}
	if *ttl != 0 {
		if err := raftlease.ValidateTTL(*ttl); err != nil {
			return usagef("renew: --ttl: %s", fieldReason(err))
		}
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	req := raftlease.RenewRequest{Name: name, Holder: *holder, Token: tok, TTL: *ttl}
	if len(meta) > 0 {
		req.Metadata = meta
	}
	lease, err := c.Renew(ctx, req)
	if err != nil {
		return g.report(err)
	}
	return g.printLease(lease)
}

func cmdRelease(g *globalFlags, args []string) error {
	fs := g.commandFlags("release", false)
	holder := fs.String("holder", "", "holder id (required)")
	token := fs.String("token", "", "the lease's fencing token (required); the auth token is --auth-token here")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	name, err := nameArg("release", pos)
	if err != nil {
		return err
	}
	if err := requireHolder("release", *holder); err != nil {
		return err
	}
	tok, err := parseToken("release", *token)
	if err != nil {
		return err
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	if err := c.Release(ctx, raftlease.ReleaseRequest{Name: name, Holder: *holder, Token: tok}); err != nil {
		return g.report(err)
	}
	if g.json() {
		return printJSON(g.stdout, map[string]any{"released": true, "name": name, "token": tok})
	}
	_, err = fmt.Fprintf(g.stdout, "released %s (token %d)\n", name, tok)
	return err
}

func cmdGet(g *globalFlags, args []string) error {
	fs := g.commandFlags("get", true)
	stale := fs.Bool("stale", false, "read the node's local replica (may lag) instead of a linearizable read")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	name, err := nameArg("get", pos)
	if err != nil {
		return err
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	lease, err := c.Get(ctx, name, raftlease.ReadOptions{Stale: *stale})
	if errors.Is(err, raftlease.ErrNotFound) && !g.json() {
		fmt.Fprintf(g.stderr, "leasenode get: %s is free\n", name)
		return &quietError{err}
	}
	if err != nil {
		return g.report(err)
	}
	return g.printLease(lease)
}

func cmdList(g *globalFlags, args []string) error {
	fs := g.commandFlags("list", true)
	prefix := fs.String("prefix", "", "list only leases whose name starts with this")
	stale := fs.Bool("stale", false, "read the node's local replica (may lag)")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("list: unexpected argument %q (use --prefix)", pos[0])
	}
	if err := raftlease.ValidatePrefix(*prefix); err != nil {
		return usagef("list: --prefix: %s", fieldReason(err))
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.opContext()
	defer cancel()
	ll, err := c.List(ctx, *prefix, raftlease.ReadOptions{Stale: *stale})
	if err != nil {
		return g.report(err)
	}
	return g.printList(ll)
}

// cmdWatch prints one line per event until interrupted. When the stream
// breaks (the node went away), it resumes from the next revision, so no
// event is skipped; when history needed for that is gone, it says so and
// exits with status 3.
func cmdWatch(g *globalFlags, args []string) error {
	fs := g.commandFlags("watch", true)
	prefix := fs.String("prefix", "", "watch every lease whose name starts with this")
	from := fs.Uint64("from", 0, "replay retained changes from this revision first")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	req := raftlease.WatchRequest{Prefix: *prefix, FromRevision: *from}
	switch {
	case len(pos) > 1:
		return usagef("watch: unexpected argument %q", pos[1])
	case len(pos) == 1 && *prefix != "":
		return usagef("watch: NAME and --prefix are exclusive")
	case len(pos) == 1:
		req.Name = pos[0]
	}
	if err := req.Validate(); err != nil {
		return usagef("watch: %s", fieldReason(err))
	}
	c, err := g.newStore()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if req.FromRevision == 0 {
		// Start from the current revision, so that a resumed stream
		// continues exactly where it broke.
		lctx, cancel := g.opContext()
		prefix := req.Prefix
		if req.Name != "" {
			prefix = req.Name
		}
		ll, err := c.List(lctx, prefix, raftlease.ReadOptions{})
		cancel()
		if err != nil {
			return g.report(err)
		}
		req.FromRevision = ll.Revision + 1
	}
	var lastRev uint64
	seen := map[string]bool{}
	backoff := 100 * time.Millisecond
	for {
		events, err := c.Watch(ctx, req)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !raftlease.IsRetryable(err):
			return g.report(err)
		case err != nil:
			fmt.Fprintf(g.stderr, "leasenode watch: %s; retrying\n", describeErr(err))
		default:
			for ev := range events {
				if ev.Type == raftlease.EventCompacted {
					_ = g.printEvent(ev)
					return g.report(fmt.Errorf("%w: the watch fell behind the retained history (oldest revision %d); list and watch again", raftlease.ErrUnavailable, ev.Revision))
				}
				// Several events may share a revision; a resumed stream
				// starts at the last one seen and skips what was printed.
				key := ev.Type.String() + " " + ev.Lease.Name
				if ev.Revision == lastRev && seen[key] {
					continue
				}
				if ev.Revision != lastRev {
					lastRev, seen = ev.Revision, map[string]bool{}
				}
				seen[key] = true
				if err := g.printEvent(ev); err != nil {
					return err
				}
				req.FromRevision = ev.Revision
				backoff = 100 * time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
