package redisbridge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
)

// tailState is the events loop's position in the event stream.
type tailState struct {
	cursor  string // ID of the last stream entry read
	lastRev uint64 // revision of the last event published to the hub
}

// tailBatch is how many stream entries one read takes.
const tailBatch = 512

// dueBatch is how many due names one look at the deadline index returns.
const dueBatch = 128

// subscribe opens the pub/sub subscriptions: the store's own channel, on
// which every write announces itself, and the expired keyspace events when
// the server has them (see Options.Notifications).
func (s *Store) subscribe() error {
	ctx, cancel := context.WithTimeout(s.base, s.opts.OperationTimeout)
	defer cancel()

	// A node client for CONFIG and keyspace events: on Cluster, the master
	// of the store's slot, since keyspace events are per node.
	var node redis.Cmdable = s.client
	var nodeClient interface {
		Subscribe(context.Context, ...string) *redis.PubSub
	} = s.client
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, s.keys.events)
		switch {
		case err == nil:
			node, nodeClient = m, m
		case s.opts.Notifications == NotifyEnable:
			return fmt.Errorf("redisbridge: Notifications is NotifyEnable, but the master of the store's slot is unknown: %w", err)
		default:
			node, nodeClient = nil, nil
		}
	}

	var channel, pattern string
	if s.opts.Notifications != NotifyOff && node != nil {
		flags, err := notifyFlags(ctx, node)
		switch {
		case err != nil && s.opts.Notifications == NotifyEnable:
			return fmt.Errorf("redisbridge: Notifications is NotifyEnable, but CONFIG GET notify-keyspace-events failed: %w", err)
		case err != nil:
			s.log.Info("cannot read notify-keyspace-events; polling", "error", err)
		case s.opts.Notifications == NotifyEnable && !hasExpiredEvents(flags):
			want := enableExpired(flags)
			if err := node.ConfigSet(ctx, "notify-keyspace-events", want).Err(); err != nil {
				return fmt.Errorf("redisbridge: Notifications is NotifyEnable, but CONFIG SET notify-keyspace-events %q failed: %w", want, err)
			}
			flags = want
		}
		if hasExpiredEvents(flags) {
			if strings.ContainsRune(flags, 'E') {
				channel = fmt.Sprintf("__keyevent@%d__:expired", s.db)
			} else {
				pattern = fmt.Sprintf("__keyspace@%d__:%s", s.db, s.keys.pattern(leaseSuffix))
			}
			s.mode = WatchNotifications
		}
	}

	if s.cluster {
		s.pubsubs = append(s.pubsubs, s.client.SSubscribe(ctx, s.keys.events))
		if channel != "" || pattern != "" {
			ps := nodeClient.Subscribe(ctx)
			s.subscribeExpired(ctx, ps, channel, pattern)
			s.pubsubs = append(s.pubsubs, ps)
		}
		return nil
	}
	ps := s.client.Subscribe(ctx, s.keys.events)
	s.subscribeExpired(ctx, ps, channel, pattern)
	s.pubsubs = append(s.pubsubs, ps)
	return nil
}

func (s *Store) subscribeExpired(ctx context.Context, ps *redis.PubSub, channel, pattern string) {
	// Errors are not fatal: the subscription is kept and made again when
	// the connection comes back.
	if channel != "" {
		_ = ps.Subscribe(ctx, channel)
	}
	if pattern != "" {
		_ = ps.PSubscribe(ctx, pattern)
	}
}

// notifyFlags reads notify-keyspace-events.
func notifyFlags(ctx context.Context, c redis.Cmdable) (string, error) {
	m, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return "", err
	}
	return m["notify-keyspace-events"], nil
}

// hasExpiredEvents reports whether the flags publish expired events on a
// keyevent (E) or keyspace (K) channel.
func hasExpiredEvents(flags string) bool {
	return strings.ContainsAny(flags, "EK") && strings.ContainsAny(flags, "xA")
}

// enableExpired adds what expired keyevent notifications need to flags.
func enableExpired(flags string) string {
	if !strings.ContainsRune(flags, 'E') {
		flags += "E"
	}
	if !strings.ContainsAny(flags, "xA") {
		flags += "x"
	}
	return flags
}

// pause waits d on the store's clock; it reports false when the store
// closed meanwhile.
func (s *Store) pause(d time.Duration) bool {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.done:
		return false
	case <-t.C():
		return true
	}
}

// notifyLoop receives one subscription's messages and wakes the loops they
// concern. go-redis re-subscribes after a lost connection; messages sent
// meanwhile are lost, which the loops' polling covers.
func (s *Store) notifyLoop(ps *redis.PubSub) {
	defer s.wg.Done()
	for {
		msg, err := ps.ReceiveTimeout(s.base, 30*time.Second)
		select {
		case <-s.done:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// A quiet channel, or a dead connection that never said so:
				// a PING tells them apart, and a failed one makes go-redis
				// reconnect and subscribe again.
				ctx, cancel := s.opContext()
				_ = ps.Ping(ctx)
				cancel()
				continue
			}
			if !s.pause(s.opts.PollInterval) {
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			// (Re)subscribed: whatever was sent before is not coming.
			poke(s.wakeEvents)
			poke(s.wakeExpiry)
		case *redis.Message:
			if m.Channel == s.keys.events {
				if s.watchers.Load() > 0 {
					poke(s.wakeEvents)
				}
				continue
			}
			key := m.Payload // keyevent channel: the payload is the key
			if m.Pattern != "" {
				_, key, _ = strings.Cut(m.Channel, "__:")
				if m.Payload != "expired" {
					continue
				}
			}
			if _, ok := s.keys.nameOf(key, leaseSuffix); ok {
				poke(s.wakeExpiry)
			}
		}
	}
}

// catchUp is a Watch's request that the events loop bring the hub up to
// the stream's end before the watch subscribes.
type catchUp struct {
	done chan error // receives the outcome
	rev  uint64     // the revision reached, set before done receives
}

// eventsLoop copies the event stream into the hub. It reads every
// PollInterval, when a Watch asks it to, and, while watches are open, when
// a write announces itself or this store wrote.
func (s *Store) eventsLoop() {
	defer s.wg.Done()
	for {
		_ = s.readStream()
		t := s.clock.NewTimer(s.opts.PollInterval)
		select {
		case <-s.done:
			t.Stop()
			return
		case req := <-s.catchUps:
			t.Stop()
			err := s.readStream()
			req.rev = s.tail.lastRev
			req.done <- err
			continue
		case <-s.wakeEvents:
		case <-t.C():
		}
		t.Stop()
	}
}

// readStream syncs the hub with the stream, or reads what is new.
func (s *Store) readStream() error {
	if !s.synced.Load() {
		return s.sync()
	}
	return s.drain()
}

// awaitCatchUp asks the events loop to read the stream to its end and
// returns the revision the hub then holds.
func (s *Store) awaitCatchUp(ctx context.Context) (uint64, error) {
	req := &catchUp{done: make(chan error, 1)}
	select {
	case s.catchUps <- req:
	case <-ctx.Done():
		return 0, notSent("watch", ctx.Err())
	case <-s.done:
		return 0, fmt.Errorf("%w: redisbridge: watch", raftlease.ErrClosed)
	}
	select {
	case err := <-req.done:
		return req.rev, err
	case <-ctx.Done():
		return 0, notSent("watch", ctx.Err())
	}
}

// opContext bounds one background call.
func (s *Store) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, s.opts.OperationTimeout)
}

// sync reads the revision counter and the recent stream at one instant and
// brings the hub up to date: it continues the hub's history when the
// stream still holds its continuation, and restarts it otherwise (a first
// sync, a trimmed or lost stream, a revision counter that went back), in
// which case every open watch receives EventCompacted.
func (s *Store) sync() error {
	ctx, cancel := s.opContext()
	defer cancel()
	var revCmd *redis.StringCmd
	var rangeCmd *redis.XMessageSliceCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		revCmd = p.Get(ctx, s.keys.revision)
		rangeCmd = p.XRevRangeN(ctx, s.keys.events, "+", "-", int64(s.opts.WatchRetain))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		s.log.Debug("cannot read the event stream", "error", err)
		return mapError("watch", []string{s.keys.revision, s.keys.events}, err)
	}
	rev, err := parseRevision(s.keys.revision, revCmd)
	if err != nil {
		s.log.Warn("cannot read the revision", "error", err)
		return err
	}
	msgs, err := rangeCmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		s.log.Warn("cannot read the event stream", "error", err)
		return mapError("watch", []string{s.keys.events}, err)
	}
	slices.Reverse(msgs)

	// The usable history is the longest run of consecutive revisions that
	// ends at the counter's value.
	var events []raftlease.Event
	for _, m := range msgs {
		ev, err := decodeEvent(s.keys.events, m.ID, m.Values)
		if err != nil {
			// Not the bridge's: it took no revision, so the run goes on.
			s.log.Warn("skipping a malformed stream entry", "id", m.ID, "error", err)
			continue
		}
		if len(events) > 0 && ev.Revision != events[len(events)-1].Revision+1 {
			events = events[:0]
		}
		events = append(events, ev)
	}
	if len(events) > 0 && events[len(events)-1].Revision != rev {
		events = nil
	}
	cursor := "0-0"
	if len(msgs) > 0 {
		cursor = msgs[len(msgs)-1].ID
	}

	last := s.tail.lastRev
	continues := s.synced.Load() && last <= rev &&
		(last == rev || (len(events) > 0 && events[0].Revision <= last+1))
	if !continues {
		start := rev
		if len(events) > 0 {
			start = events[0].Revision - 1
		}
		if s.synced.Load() {
			s.log.Warn("event history lost; open watches are compacted", "last_revision", last, "revision", rev)
		}
		s.hub.Reset(start)
		last = start
	}
	for _, ev := range events {
		if ev.Revision > last {
			s.hub.Publish(ev.Revision, []raftlease.Event{ev})
		}
	}
	s.tail = tailState{cursor: cursor, lastRev: rev}
	s.synced.Store(true)
	poke(s.wakeExpiry)
	return nil
}

func parseRevision(key string, cmd *redis.StringCmd) (uint64, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, mapError("watch", []string{key}, err)
	}
	rev, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, malformed(key, "revision %q is not an unsigned integer", v)
	}
	return rev, nil
}

// drain publishes the stream entries after the cursor. It reads the entries
// and the revision counter at one instant; when it has read everything and
// the counter disagrees with the last revision published, the stream was
// lost or replaced, and it syncs again.
func (s *Store) drain() error {
	for {
		ctx, cancel := s.opContext()
		var revCmd *redis.StringCmd
		var readCmd *redis.XStreamSliceCmd
		_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			readCmd = p.XRead(ctx, &redis.XReadArgs{Streams: []string{s.keys.events, s.tail.cursor}, Count: tailBatch, Block: -1})
			revCmd = p.Get(ctx, s.keys.revision)
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.log.Debug("cannot read the event stream", "error", err)
			return mapError("watch", []string{s.keys.events, s.keys.revision}, err)
		}
		rev, err := parseRevision(s.keys.revision, revCmd)
		if err != nil {
			s.log.Warn("cannot read the revision", "error", err)
			return err
		}
		streams, err := readCmd.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.log.Warn("cannot read the event stream", "error", err)
			return mapError("watch", []string{s.keys.events}, err)
		}
		var msgs []redis.XMessage
		if len(streams) > 0 {
			msgs = streams[0].Messages
		}
		for _, m := range msgs {
			s.tail.cursor = m.ID
			ev, err := decodeEvent(s.keys.events, m.ID, m.Values)
			if err != nil {
				s.log.Warn("skipping a malformed stream entry", "id", m.ID, "error", err)
				continue
			}
			if ev.Revision != s.tail.lastRev+1 {
				// A gap (an entry trimmed or malformed) or a revision that
				// went back (Redis lost writes): the history is broken here.
				s.log.Warn("event history broken; open watches are compacted", "last_revision", s.tail.lastRev, "next_revision", ev.Revision)
				s.hub.Reset(ev.Revision - 1)
			}
			s.hub.Publish(ev.Revision, []raftlease.Event{ev})
			s.tail.lastRev = ev.Revision
			if ev.Type == raftlease.EventAcquired || ev.Type == raftlease.EventRenewed {
				s.deadlineAt(ev.Lease.Deadline) // another client's lease may expire first
			}
		}
		if len(msgs) == tailBatch {
			continue
		}
		if rev != s.tail.lastRev {
			return s.sync()
		}
		return nil
	}
}

// expiryLoop records the expiry of leases Redis has expired, so that
// watchers see them. It looks at the deadline index when the earliest
// deadline comes, when woken (a write, a keyspace notification), and every
// PollInterval.
func (s *Store) expiryLoop() {
	defer s.wg.Done()
	for {
		s.expiryPlan.Store(math.MaxInt64)
		wait, now := s.expireDue()
		if now > 0 {
			s.expiryPlan.Store(now + int64(wait/time.Millisecond))
		}
		t := s.clock.NewTimer(wait)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-s.wakeExpiry:
		case <-t.C():
		}
		t.Stop()
	}
}

// expireDue runs the expire script for every name whose deadline has come
// and returns how long to wait before looking again, and the server's time
// (ms) it looked at, or 0 when it could not look.
func (s *Store) expireDue() (time.Duration, int64) {
	poll := s.opts.PollInterval
	for {
		ctx, cancel := s.opContext()
		res, err := s.scripts.due.Run(ctx, s.client, []string{s.keys.deadlines}, dueBatch).Slice()
		cancel()
		if err != nil {
			s.log.Debug("cannot read the deadline index", "error", mapError("due", []string{s.keys.deadlines}, err))
			return poll, 0
		}
		if len(res) < 2 {
			return poll, 0
		}
		now, _ := replyInt(res[0])
		next, hasNext := replyInt(res[1])
		due := res[2:]
		stillLive := false
		for _, v := range due {
			name, _ := replyString(v)
			if raftlease.ValidateName(name) != nil {
				s.log.Warn("deadline index holds an invalid name", "name", name)
				continue
			}
			keys := s.keys.write(name)
			ctx, cancel := s.opContext()
			r, err := s.scripts.expire.Run(ctx, s.client, keys, s.writeArgs(name)...).Slice()
			cancel()
			switch {
			case err != nil:
				s.log.Warn("cannot record an expiry", "lease", name, "error", mapError("expire", keys, err))
				return poll, 0
			case len(r) > 0 && r[0] == "live":
				stillLive = true
			case len(r) > 0 && r[0] == "expired":
				if s.watchers.Load() > 0 {
					poke(s.wakeEvents)
				}
			}
		}
		if len(due) == dueBatch {
			continue
		}
		wait := poll
		if hasNext {
			wait = min(wait, time.Duration(next-now+1)*time.Millisecond)
		}
		if stillLive {
			// Redis and the index disagree by a millisecond or so.
			wait = min(wait, 2*time.Millisecond)
		}
		return max(wait, time.Millisecond), now
	}
}
