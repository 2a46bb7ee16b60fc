package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"text/tabwriter"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/redisbridge"
)

// `leasenode migrate` copies the live leases of a Redis bridge into a
// leasenode cluster, and raises the cluster's token counter above every
// counter Redis has, so that fencing tokens keep growing for every name.
// docs/redis.md ("Migration") has the cut-over procedure and the fencing
// argument; this file only wires redisbridge.Store.Export to the cluster
// client.

// migrateFloorLease is the lease `migrate` acquires with the token floor
// and releases at once. The cluster's token counter is one for all names,
// so one acquisition above the highest Redis counter puts every later
// token of every name above it, free names included.
const migrateFloorLease = "raftlease.migrate-floor"

// pttlGranularity is added to a remaining time read with PTTL, which
// reports whole milliseconds, so that the migrated deadline is never
// earlier than the Redis one.
const pttlGranularity = time.Millisecond

// Statuses of a migrateRow.
const (
	migrateMigrated = "migrated" // acquired in the cluster (dry run: would be)
	migratePresent  = "present"  // the same holder already holds it in the cluster; left as it is
	migrateFree     = "free"     // no live lease in Redis; its counter is covered by the floor
	migrateSkipped  = "skipped"  // see Skip
)

// Reasons for skipping a lease (migrateRow.Skip).
const (
	skipExpired    = "expired"     // its Redis deadline passed before it could be copied
	skipHeld       = "held"        // someone else holds the name in the cluster
	skipStaleToken = "stale_token" // the same holder holds it in the cluster under a token not above Redis's
	skipInvalid    = "invalid"     // the cluster refused it as invalid
)

// migrateRow is one name of the report (-o json: one element of
// "leases").
type migrateRow struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Skip   string `json:"skip,omitempty"`
	Reason string `json:"reason,omitempty"`
	Holder string `json:"holder,omitempty"`
	// RedisToken is the live lease's token in Redis; RedisCounter the
	// name's fencing counter there (the largest token Redis issued).
	RedisToken   uint64 `json:"redis_token,omitempty"`
	RedisCounter uint64 `json:"redis_counter"`
	// RedisTTLMs and RedisRemainingMs are the Redis lease's TTL and the
	// time it had left when exported.
	RedisTTLMs       int64 `json:"redis_ttl_ms,omitempty"`
	RedisRemainingMs int64 `json:"redis_remaining_ms,omitempty"`
	// Token is the lease's token in the cluster (migrated or present; 0
	// in a dry run). TTLMs is the TTL granted there (planned, in a dry
	// run); RemainingMs what the cluster reports left (present).
	Token       uint64            `json:"token,omitempty"`
	TTLMs       int64             `json:"ttl_ms,omitempty"`
	RemainingMs int64             `json:"remaining_ms,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`

	// ttl is the TTL to grant, and apply whether to acquire at all.
	ttl   time.Duration
	apply bool
}

// migrateReport is the report of one run (-o json: one document).
type migrateReport struct {
	DryRun bool   `json:"dry_run"`
	From   string `json:"from"`
	Prefix string `json:"prefix"`
	// RedisMaxCounter is the highest fencing counter found in Redis;
	// TokenFloor is that plus --token-margin: every token the cluster
	// issues after the migration is above it.
	RedisMaxCounter uint64 `json:"redis_max_counter"`
	TokenMargin     uint64 `json:"token_margin"`
	TokenFloor      uint64 `json:"token_floor"`
	// ClusterTokenBefore and ClusterTokenAfter are the cluster's highest
	// token before and after the run.
	ClusterTokenBefore uint64       `json:"cluster_token_before"`
	ClusterTokenAfter  uint64       `json:"cluster_token_after"`
	Migrated           int          `json:"migrated"`
	Present            int          `json:"present"`
	Free               int          `json:"free"`
	Skipped            int          `json:"skipped"`
	Leases             []migrateRow `json:"leases"`
}

// cmdMigrate: migrate --from-redis URL [--prefix P] [--dry-run]
// [--token-margin N] --addr <cluster endpoints>.
//
// Exit status: 0 when every live lease was migrated or already present (or
// expired in Redis meanwhile), 1 when some were skipped because the
// cluster holds them otherwise or refused them, 2 usage, 3 unavailable.
func cmdMigrate(g *globalFlags, args []string) error {
	fs := g.commandFlags("migrate", true)
	from := fs.String("from-redis", "", "the Redis server to migrate from: redis://[user:password@]host:port[/db] or rediss://… (required)")
	prefix := fs.String("prefix", "", "key prefix of the bridge's keys in Redis (default \"raftlease:\")")
	dryRun := fs.Bool("dry-run", false, "read both stores and print the plan; change nothing")
	margin := fs.Uint64("token-margin", 0, "add this to the token floor, to stay above tokens Redis issues after the export (when electors still run on Redis)")
	pos, err := g.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("migrate: unexpected argument %q", pos[0])
	}
	if *from == "" {
		return usagef("migrate: --from-redis is required (redis://host:port)")
	}
	if addrKind(*from) != storeRedis {
		return usagef("migrate: --from-redis %q: want redis://[user:password@]host:port[/db] or rediss://…", redact(*from))
	}
	target, err := parseRedisURL("from-redis", *from)
	if err != nil {
		return err
	}
	keyPrefix := *prefix
	if err := (redisbridge.Options{Addr: target.Addr, KeyPrefix: keyPrefix}).Validate(); err != nil {
		return usagef("migrate: --prefix %q: %s", keyPrefix, fieldReason(err))
	}
	if err := g.requireCluster(); err != nil {
		return usagef("migrate: --addr names the cluster to migrate to: %v", err)
	}

	rs, err := g.newRedisStore("from-redis", *from, keyPrefix, false, redisbridge.Options{Notifications: redisbridge.NotifyOff})
	if err != nil {
		return err
	}
	defer rs.Close()
	c, err := g.newClient()
	if err != nil {
		return err
	}
	defer c.Close()

	report := migrateReport{DryRun: *dryRun, From: target.Display, Prefix: rs.KeyPrefix(), TokenMargin: *margin}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	st, err := c.Status(ctx)
	cancel()
	if err != nil {
		return g.report(fmt.Errorf("migrate: cluster status: %w", err))
	}
	report.ClusterTokenBefore = st.LastToken

	ctx, cancel = context.WithTimeout(context.Background(), g.Timeout)
	exported, err := rs.Export(ctx)
	cancel()
	if err != nil {
		return g.report(fmt.Errorf("migrate: export from %s: %w", target.Display, err))
	}
	// Every remaining time was read before this instant; measuring from
	// it overestimates what is left, never underestimates, so migrated
	// deadlines are at or after the Redis ones.
	exportedAt := time.Now()

	for _, e := range exported {
		report.RedisMaxCounter = max(report.RedisMaxCounter, e.CounterValue, e.Token)
	}
	if report.RedisMaxCounter > math.MaxUint64-*margin {
		return usagef("migrate: --token-margin %d: the floor would pass 2^64-1", *margin)
	}
	if len(exported) > 0 {
		report.TokenFloor = report.RedisMaxCounter + *margin
	}

	// First raise the cluster's counter: from here on every token the
	// cluster issues, for any name and any client, is above the floor.
	if !*dryRun && report.TokenFloor > 0 {
		if err := raiseTokenFloor(g, c, report.TokenFloor); err != nil {
			return g.report(err)
		}
	}

	report.Leases = make([]migrateRow, 0, len(exported))
	var fatal error
	for _, e := range exported {
		row, err := migrateOne(g, c, e, exportedAt, report.TokenFloor, *dryRun)
		if err != nil {
			fatal = fmt.Errorf("migrate: %s: %w (the leases before it were migrated; running migrate again is safe)", e.Name, err)
			break
		}
		report.Leases = append(report.Leases, row)
		switch row.Status {
		case migrateMigrated:
			report.Migrated++
		case migratePresent:
			report.Present++
		case migrateFree:
			report.Free++
		default:
			report.Skipped++
		}
	}

	ctx, cancel = context.WithTimeout(context.Background(), g.Timeout)
	if st, err := c.Status(ctx); err == nil {
		report.ClusterTokenAfter = st.LastToken
	}
	cancel()
	if err := g.printMigrateReport(report); err != nil {
		return err
	}
	if fatal != nil {
		return g.report(fatal)
	}
	for _, r := range report.Leases {
		if r.Status == migrateSkipped && r.Skip != skipExpired {
			return &exitError{status: exitRefused}
		}
	}
	return nil
}

// raiseTokenFloor acquires and releases migrateFloorLease with the token
// floor. A concurrent migrate holding the marker is waited for.
func raiseTokenFloor(g *globalFlags, c *client.Client, floor uint64) error {
	holder := "leasenode-migrate@" + defaultHolder()
	for attempt := 0; ; attempt++ {
		ctx, cancel := g.opContext()
		l, err := c.Acquire(ctx, raftlease.AcquireRequest{Name: migrateFloorLease, Holder: holder, TTL: raftlease.MinTTL, TokenFloor: floor})
		cancel()
		var held *raftlease.HeldError
		switch {
		case err == nil:
			ctx, cancel := g.opContext()
			// A failed release only leaves the marker to expire (MinTTL).
			_ = c.Release(ctx, raftlease.ReleaseRequest{Name: migrateFloorLease, Holder: holder, Token: l.Token})
			cancel()
			return nil
		case errors.As(err, &held) && attempt < 50:
			time.Sleep(held.Current.Remaining + 10*time.Millisecond)
		default:
			return fmt.Errorf("migrate: raise the cluster's token floor to %d: %w", floor, err)
		}
	}
}

// migrateOne plans one exported name against the cluster's current lease
// of it and, unless dryRun, carries the plan out.
func migrateOne(g *globalFlags, c *client.Client, e redisbridge.ExportedLease, exportedAt time.Time, floor uint64, dryRun bool) (migrateRow, error) {
	var current *raftlease.Lease
	if e.Live() {
		ctx, cancel := g.opContext()
		l, err := c.Get(ctx, e.Name, raftlease.ReadOptions{})
		cancel()
		switch {
		case err == nil:
			current = &l
		case errors.Is(err, raftlease.ErrNotFound):
		case errors.Is(err, raftlease.ErrInvalidArgument):
			// Planned below as invalid.
		default:
			return migrateRow{}, err
		}
	}
	// What is left is measured now, just before the acquire is sent.
	row := planMigration(e, current, time.Since(exportedAt))
	if !row.apply || dryRun {
		return row, nil
	}
	ctx, cancel := g.opContext()
	l, err := c.Acquire(ctx, raftlease.AcquireRequest{Name: e.Name, Holder: e.Holder, TTL: row.ttl, Metadata: e.Metadata, TokenFloor: floor})
	cancel()
	var held *raftlease.HeldError
	switch {
	case err == nil:
	case errors.As(err, &held):
		return skipRow(row, skipHeld, fmt.Sprintf("held by %s in the cluster (token %d)", held.Current.Holder, held.Current.Token)), nil
	case errors.Is(err, raftlease.ErrInvalidArgument):
		return skipRow(row, skipInvalid, describeErr(err)), nil
	default:
		return migrateRow{}, err
	}
	if l.Token <= e.CounterValue {
		// The holder took the name in the cluster between our read and
		// our acquire, under an older token: the acquire was idempotent.
		return skipRow(row, skipStaleToken, fmt.Sprintf("the same holder holds it in the cluster under token %d, not above Redis's %d: release it there and migrate again", l.Token, e.CounterValue)), nil
	}
	row.Token = l.Token
	row.TTLMs = l.TTL.Milliseconds()
	return row, nil
}

// planMigration decides what to do with one exported name, given the
// cluster's current lease of it (nil when free) and the time since the
// export. The TTL granted is what the Redis lease has left (plus PTTL's
// millisecond), so the new deadline is at or after the Redis one, clipped
// to the lease's TTL; a lease with less than MinTTL left gets MinTTL,
// which keeps both bounds, since TTL >= MinTTL.
func planMigration(e redisbridge.ExportedLease, current *raftlease.Lease, elapsed time.Duration) migrateRow {
	row := migrateRow{Name: e.Name, RedisCounter: e.CounterValue}
	if !e.Live() {
		row.Status = migrateFree
		row.Reason = fmt.Sprintf("no live lease in Redis; counter %d is covered by the token floor", e.CounterValue)
		return row
	}
	row.Holder, row.RedisToken, row.Metadata = e.Holder, e.Token, e.Metadata
	row.RedisTTLMs, row.RedisRemainingMs = e.TTL.Milliseconds(), e.Remaining.Milliseconds()
	left := e.Remaining - elapsed
	if left <= 0 {
		return skipRow(row, skipExpired, fmt.Sprintf("its Redis deadline passed during the migration (%v left at the export)", e.Remaining.Round(time.Millisecond)))
	}
	if current != nil && current.Holder != e.Holder {
		return skipRow(row, skipHeld, fmt.Sprintf("held by %s in the cluster (token %d)", current.Holder, current.Token))
	}
	if current != nil {
		if current.Token <= e.CounterValue {
			return skipRow(row, skipStaleToken, fmt.Sprintf("the same holder holds it in the cluster under token %d, not above Redis's %d: release it there and migrate again", current.Token, e.CounterValue))
		}
		row.Status = migratePresent
		row.Token, row.TTLMs, row.RemainingMs = current.Token, current.TTL.Milliseconds(), current.Remaining.Milliseconds()
		row.Reason = "already held by the same holder in the cluster; left as it is"
		return row
	}
	ttl := min(left+pttlGranularity, e.TTL)
	if ttl < raftlease.MinTTL {
		row.Reason = fmt.Sprintf("%v left, below the minimum TTL: granted %v", left.Round(time.Millisecond), raftlease.MinTTL)
		ttl = raftlease.MinTTL
	}
	if err := (raftlease.AcquireRequest{Name: e.Name, Holder: e.Holder, TTL: ttl, Metadata: e.Metadata}).Validate(); err != nil {
		return skipRow(row, skipInvalid, describeErr(err))
	}
	row.Status, row.ttl, row.apply = migrateMigrated, ttl, true
	row.TTLMs = ttl.Milliseconds()
	return row
}

func skipRow(row migrateRow, skip, reason string) migrateRow {
	row.Status, row.Skip, row.Reason, row.apply = migrateSkipped, skip, reason, false
	return row
}

func (g *globalFlags) printMigrateReport(r migrateReport) error {
	if g.json() {
		return printJSON(g.stdout, r)
	}
	if r.DryRun {
		fmt.Fprintln(g.stdout, "dry run: nothing was changed; this is the plan")
	}
	dash := func(v uint64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprint(v)
	}
	ms := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return (time.Duration(v) * time.Millisecond).String()
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tHOLDER\tREDIS TOKEN\tREDIS COUNTER\tREDIS LEFT\tTOKEN\tTTL\tNOTE")
	for _, l := range r.Leases {
		status := l.Status
		if l.Skip != "" {
			status += " (" + l.Skip + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.Name, status, orDash(l.Holder), dash(l.RedisToken), l.RedisCounter,
			ms(l.RedisRemainingMs), dash(l.Token), ms(l.TTLMs), l.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "migrated"
	if r.DryRun {
		verb = "would migrate"
	}
	fmt.Fprintf(g.stdout, "%s %d, already present %d, free %d, skipped %d (from %s, prefix %q)\n",
		verb, r.Migrated, r.Present, r.Free, r.Skipped, r.From, r.Prefix)
	switch {
	case r.TokenFloor == 0:
		fmt.Fprintln(g.stdout, "nothing in Redis under this prefix")
	case r.DryRun:
		fmt.Fprintf(g.stdout, "token floor %d (Redis's highest counter %d + margin %d): the cluster's highest token is %d now\n",
			r.TokenFloor, r.RedisMaxCounter, r.TokenMargin, r.ClusterTokenBefore)
	default:
		fmt.Fprintf(g.stdout, "token floor %d (Redis's highest counter %d + margin %d): every token the cluster issues from now on is above it; highest token now %d\n",
			r.TokenFloor, r.RedisMaxCounter, r.TokenMargin, r.ClusterTokenAfter)
	}
	return nil
}
