package redisbridge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/internal/watch"
)

// Store is a raftlease.Store on Redis. Create it with New or NewWithClient
// and Close it when done. All methods are safe for concurrent use.
type Store struct {
	client  redis.UniversalClient
	own     bool // Close closes client
	cluster bool
	db      int
	opts    Options
	keys    keys
	scripts *scripts
	pubCmd  string // PUBLISH, or SPUBLISH on Cluster
	maxlen  string
	hub     *watch.Hub
	log     hclog.Logger
	clock   raftlease.Clock
	mode    WatchMode

	pubsubs []*redis.PubSub

	// base is cancelled by Close; the background goroutines' calls use it.
	base       context.Context
	cancelBase context.CancelFunc

	wakeEvents chan struct{} // the event stream may have grown
	wakeExpiry chan struct{} // a lease may have expired, or a deadline changed
	catchUps   chan *catchUp // Watch asks the events loop to read to the end

	// synced is set once the hub holds the stream's recent history, so that
	// a watch can resume from a revision. Owned by the events loop; read by
	// Watch.
	synced atomic.Bool
	tail   tailState // owned by the events loop

	// watchers counts open watches; without any, the events loop reads
	// the stream only every PollInterval.
	watchers atomic.Int64
	// expiryPlan is when (server ms) the expiry loop will next look at the
	// deadline index, or math.MaxInt64 while it is looking; a write whose
	// deadline comes earlier wakes it.
	expiryPlan atomic.Int64

	closed    atomic.Bool
	lifeMu    sync.Mutex // orders wg.Add in Watch with Close's wg.Wait
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

var _ raftlease.Store = (*Store)(nil)

// WatchMode says how a Store learns that Redis expired a lease.
type WatchMode uint8

const (
	// WatchPolling: the Store checks its deadline index at each lease's
	// deadline and every PollInterval.
	WatchPolling WatchMode = iota + 1
	// WatchNotifications: as WatchPolling, and Redis's keyspace
	// notifications for expired keys make it check at once.
	WatchNotifications
)

func (m WatchMode) String() string {
	switch m {
	case WatchPolling:
		return "polling"
	case WatchNotifications:
		return "keyspace notifications"
	}
	return "unknown"
}

// New connects to Redis as opts say and returns a running store. It does
// not fail when Redis is unreachable: calls then fail with ErrUnavailable
// until Redis answers, and the watch machinery catches up by itself. The
// notification mode is decided once, here (see Options.Notifications);
// when Redis cannot be asked, the store polls.
//
// The client New builds has the driver's retries off, so that a command is
// sent at most once, and honours ctx deadlines (ContextTimeoutEnabled).
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cluster := len(opts.ClusterAddrs) > 0
	o := opts.withDefaults(cluster)
	return newStore(buildClient(o), true, cluster, o.DB, o)
}

// NewWithClient returns a running store on a client the caller built (a
// *redis.Client, including one from redis.NewFailoverClient, or a
// *redis.ClusterClient). Close does not close the client. The connection
// fields of opts must be empty.
//
// Configure the client as New does: MaxRetries -1, so that go-redis does not
// resend a script whose reply was lost (a resent release would report
// ErrNotHolder for a release that took effect), and ContextTimeoutEnabled,
// so that ctx deadlines and OperationTimeout bound every call.
func NewWithClient(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: redisbridge: NewWithClient: nil client", raftlease.ErrInvalidArgument)
	}
	cluster, db := false, 0
	switch c := client.(type) {
	case *redis.ClusterClient:
		cluster = true
	case *redis.Ring:
		return nil, fmt.Errorf("%w: redisbridge: a *redis.Ring shards keys on its own; use a *redis.Client or *redis.ClusterClient", raftlease.ErrInvalidArgument)
	case *redis.Client:
		db = c.Options().DB
	}
	if err := opts.validateForClient(cluster); err != nil {
		return nil, err
	}
	return newStore(client, false, cluster, db, opts.withDefaults(cluster))
}

func buildClient(o Options) redis.UniversalClient {
	t := o.OperationTimeout
	switch {
	case len(o.ClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.ClusterAddrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLS,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t, ContextTimeoutEnabled: true,
			MaxRetries: -1, DialerRetries: 1, PoolSize: o.PoolSize,
		})
	case o.MasterName != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t, ContextTimeoutEnabled: true,
			MaxRetries: -1, DialerRetries: 1, PoolSize: o.PoolSize,
		})
	default:
		return redis.NewClient(&redis.Options{
			Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
			DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t, ContextTimeoutEnabled: true,
			MaxRetries: -1, DialerRetries: 1, PoolSize: o.PoolSize,
		})
	}
}

func newStore(client redis.UniversalClient, own, cluster bool, db int, o Options) (*Store, error) {
	base, cancel := context.WithCancel(context.Background())
	s := &Store{
		client:     client,
		own:        own,
		cluster:    cluster,
		db:         db,
		opts:       o,
		keys:       newKeys(o.KeyPrefix),
		scripts:    newScripts(),
		pubCmd:     "PUBLISH",
		maxlen:     strconv.Itoa(o.EventRetain),
		hub:        watch.NewHub(watch.Options{Retain: o.WatchRetain, Buffer: o.WatchBuffer}),
		log:        o.Logger.Named("redisbridge"),
		clock:      o.Clock,
		mode:       WatchPolling,
		base:       base,
		cancelBase: cancel,
		wakeEvents: make(chan struct{}, 1),
		wakeExpiry: make(chan struct{}, 1),
		catchUps:   make(chan *catchUp),
		done:       make(chan struct{}),
	}
	s.expiryPlan.Store(math.MaxInt64)
	if cluster {
		s.pubCmd = "SPUBLISH"
	}

	// Load the scripts once; EVALSHA then finds them. Failure is fine: Run
	// falls back to EVAL, which loads them too.
	ctx, cancelLoad := context.WithTimeout(base, o.OperationTimeout)
	for _, sc := range s.scripts.all() {
		if err := sc.Load(ctx, client).Err(); err != nil {
			s.log.Debug("cannot load script yet", "error", err)
			break
		}
	}
	cancelLoad()

	if err := s.subscribe(); err != nil {
		cancel()
		for _, ps := range s.pubsubs {
			_ = ps.Close()
		}
		s.hub.Close()
		if own {
			_ = client.Close()
		}
		return nil, err
	}
	s.log.Debug("watching", "mode", s.mode.String(), "prefix", o.KeyPrefix)

	// Take the stream's recent history now when Redis answers, so that
	// watches can resume from a revision at once; the events loop retries
	// otherwise.
	_ = s.sync()

	s.wg.Add(2 + len(s.pubsubs))
	go s.eventsLoop()
	go s.expiryLoop()
	for _, ps := range s.pubsubs {
		go s.notifyLoop(ps)
	}
	return s, nil
}

// WatchMode reports how the store learns of expiries.
func (s *Store) WatchMode() WatchMode { return s.mode }

// KeyPrefix returns the prefix of every key the store uses.
func (s *Store) KeyPrefix() string { return s.keys.prefix }

// Close stops the store's goroutines and closes every watch channel; it
// closes the Redis client too when New built it. Later calls return
// ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.lifeMu.Lock()
		s.closed.Store(true)
		close(s.done)
		s.lifeMu.Unlock()
		s.cancelBase()
		for _, ps := range s.pubsubs {
			_ = ps.Close()
		}
		s.wg.Wait()
		s.hub.Close()
		if s.own {
			s.closeErr = s.client.Close()
		}
	})
	return s.closeErr
}

// begin checks that a call may start and bounds it by OperationTimeout.
func (s *Store) begin(ctx context.Context, op string) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return ctx, func() {}, fmt.Errorf("%w: redisbridge: %s", raftlease.ErrClosed, op)
	}
	if err := ctx.Err(); err != nil {
		return ctx, func() {}, notSent(op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.OperationTimeout)
	return ctx, cancel, nil
}

// writeArgs returns the arguments every mutating script starts with.
func (s *Store) writeArgs(name string, more ...any) []any {
	return append([]any{name, s.maxlen, s.keys.events, s.pubCmd}, more...)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// wrote tells the background loops that this store changed something;
// deadline is the new deadline of the lease, if it has one.
func (s *Store) wrote(deadline time.Duration) {
	if s.watchers.Load() > 0 {
		poke(s.wakeEvents)
	}
	s.deadlineAt(deadline)
}

// deadlineAt wakes the expiry loop when a lease's deadline comes before the
// loop means to look.
func (s *Store) deadlineAt(deadline time.Duration) {
	if deadline > 0 && int64(deadline/time.Millisecond) < s.expiryPlan.Load() {
		poke(s.wakeExpiry)
	}
}

func ttlArgs(ttl time.Duration) (ns, ms string) {
	return strconv.FormatInt(int64(ttl), 10), strconv.FormatInt(int64((ttl+time.Millisecond-1)/time.Millisecond), 10)
}

// Acquire implements raftlease.Store. The decision, the token counter and
// the write are one script: the name is free when its lease key is absent
// or at its deadline on the Redis server's clock.
//
// TokenFloor must be below 2^63-1, the largest value of a Redis counter.
func (s *Store) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	err := req.Validate()
	if req.TokenFloor > maxTokenFloor {
		err = errors.Join(err, &raftlease.FieldError{Field: "token floor", Reason: fmt.Sprintf("%d is above %d, the most a Redis counter can be raised to", req.TokenFloor, uint64(maxTokenFloor))})
	}
	if err != nil {
		return raftlease.Lease{}, err
	}
	md, err := encodeMetadata(req.Metadata)
	if err != nil {
		return raftlease.Lease{}, err
	}
	ctx, cancel, err := s.begin(ctx, "acquire")
	defer cancel()
	if err != nil {
		return raftlease.Lease{}, err
	}
	ns, ms := ttlArgs(req.TTL)
	keys := s.keys.write(req.Name)
	res, err := s.scripts.acquire.Run(ctx, s.client, keys,
		s.writeArgs(req.Name, req.Holder, ns, ms, md, strconv.FormatUint(req.TokenFloor, 10))...).Slice()
	if err != nil {
		return raftlease.Lease{}, mapError("acquire", keys, err)
	}
	status, lease, err := decodeWrite(keys[0], req.Name, res)
	if err != nil {
		return raftlease.Lease{}, err
	}
	switch status {
	case "held":
		return raftlease.Lease{}, &raftlease.HeldError{Current: lease}
	case "acquired", "renewed":
		s.wrote(lease.Deadline)
		return lease, nil
	}
	return raftlease.Lease{}, malformed("", "acquire script replied %q", status)
}

// Renew implements raftlease.Store.
func (s *Store) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	if err := req.Validate(); err != nil {
		return raftlease.Lease{}, err
	}
	md, err := encodeMetadata(req.Metadata)
	if err != nil {
		return raftlease.Lease{}, err
	}
	ctx, cancel, err := s.begin(ctx, "renew")
	defer cancel()
	if err != nil {
		return raftlease.Lease{}, err
	}
	ns := "0"
	if req.TTL != 0 {
		ns, _ = ttlArgs(req.TTL)
	}
	setMetadata := "0"
	if req.Metadata != nil {
		setMetadata = "1"
	}
	keys := s.keys.write(req.Name)
	res, err := s.scripts.renew.Run(ctx, s.client, keys,
		s.writeArgs(req.Name, req.Holder, strconv.FormatUint(req.Token, 10), ns, md, setMetadata)...).Slice()
	if err != nil {
		return raftlease.Lease{}, mapError("renew", keys, err)
	}
	status, lease, err := decodeWrite(keys[0], req.Name, res)
	if err != nil {
		return raftlease.Lease{}, err
	}
	switch status {
	case "not_holder":
		return raftlease.Lease{}, fmt.Errorf("%w: lease %q under token %d by %q", raftlease.ErrNotHolder, req.Name, req.Token, req.Holder)
	case "renewed":
		s.wrote(lease.Deadline)
		return lease, nil
	}
	return raftlease.Lease{}, malformed("", "renew script replied %q", status)
}

// Release implements raftlease.Store.
func (s *Store) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel, err := s.begin(ctx, "release")
	defer cancel()
	if err != nil {
		return err
	}
	keys := s.keys.write(req.Name)
	res, err := s.scripts.release.Run(ctx, s.client, keys,
		s.writeArgs(req.Name, req.Holder, strconv.FormatUint(req.Token, 10))...).Slice()
	if err != nil {
		return mapError("release", keys, err)
	}
	status := ""
	if len(res) > 0 {
		status, _ = res[0].(string)
	}
	switch status {
	case "not_holder":
		return fmt.Errorf("%w: lease %q under token %d by %q", raftlease.ErrNotHolder, req.Name, req.Token, req.Holder)
	case "released":
		s.wrote(0)
		return nil
	}
	return malformed("", "release script replied %v", res)
}

// decodeWrite splits a write script's reply into its status and, when it
// carries one, the lease.
func decodeWrite(key, name string, res []any) (string, raftlease.Lease, error) {
	if len(res) == 0 {
		return "", raftlease.Lease{}, malformed(key, "empty script reply")
	}
	status, ok := res[0].(string)
	if !ok {
		return "", raftlease.Lease{}, malformed(key, "script reply status is a %T", res[0])
	}
	if len(res) == 1 {
		return status, raftlease.Lease{}, nil
	}
	l, err := decodeFlat(key, name, res[1:])
	return status, l, err
}

// Get implements raftlease.Store. Every read goes to the master, so
// opts.Stale changes nothing.
func (s *Store) Get(ctx context.Context, name string, _ raftlease.ReadOptions) (raftlease.Lease, error) {
	if err := raftlease.ValidateName(name); err != nil {
		return raftlease.Lease{}, err
	}
	ctx, cancel, err := s.begin(ctx, "get")
	defer cancel()
	if err != nil {
		return raftlease.Lease{}, err
	}
	keys := []string{s.keys.lease(name)}
	res, err := s.scripts.get.Run(ctx, s.client, keys).Slice()
	if err != nil {
		return raftlease.Lease{}, mapError("get", keys, err)
	}
	if len(res) == 0 {
		return raftlease.Lease{}, fmt.Errorf("%w: %q", raftlease.ErrNotFound, name)
	}
	return decodeFlat(keys[0], name, res)
}

// listAttempts bounds how often List re-reads an index that changed
// between reading it and reading the leases.
const listAttempts = 10

// List implements raftlease.Store. It reads the name index, then, in one
// script, checks the index is unchanged and reads those leases and the
// revision, so the listing is one instant of the store.
func (s *Store) List(ctx context.Context, prefix string, _ raftlease.ReadOptions) (raftlease.LeaseList, error) {
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return raftlease.LeaseList{}, err
	}
	ctx, cancel, err := s.begin(ctx, "list")
	defer cancel()
	if err != nil {
		return raftlease.LeaseList{}, err
	}
	lo, hi := "-", "+"
	if prefix != "" {
		lo, hi = "["+prefix, "["+prefix+"\xff"
	}
	for range listAttempts {
		names, err := s.client.ZRangeByLex(ctx, s.keys.names, &redis.ZRangeBy{Min: lo, Max: hi}).Result()
		if err != nil {
			return raftlease.LeaseList{}, mapError("list", []string{s.keys.names}, err)
		}
		keys := make([]string, 0, len(names)+2)
		keys = append(keys, s.keys.names, s.keys.revision)
		args := make([]any, 0, len(names)+2)
		args = append(args, lo, hi)
		for _, n := range names {
			keys = append(keys, s.keys.lease(n))
			args = append(args, n)
		}
		res, err := s.scripts.list.Run(ctx, s.client, keys, args...).Slice()
		if err != nil {
			return raftlease.LeaseList{}, mapError("list", keys, err)
		}
		if len(res) == 1 && res[0] == "retry" {
			continue
		}
		return s.decodeList(res)
	}
	return raftlease.LeaseList{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied,
		Err: fmt.Errorf("redisbridge: list: the name index changed during each of %d attempts", listAttempts)}
}

func (s *Store) decodeList(res []any) (raftlease.LeaseList, error) {
	const per = 10 // name, v, 7 fields, pttl
	if len(res) < 2 || res[0] != "ok" || (len(res)-2)%per != 0 {
		return raftlease.LeaseList{}, malformed("", "list script replied with %d values", len(res))
	}
	revStr, _ := replyString(res[1])
	rev, err := strconv.ParseUint(revStr, 10, 64)
	if err != nil {
		return raftlease.LeaseList{}, malformed(s.keys.revision, "revision %q is not an unsigned integer", revStr)
	}
	out := raftlease.LeaseList{Revision: rev}
	for i := 2; i < len(res); i += per {
		name, _ := replyString(res[i])
		key := s.keys.lease(name)
		if v, _ := replyString(res[i+1]); v != formatVersion {
			return raftlease.LeaseList{}, malformed(key, "format version %q, want %q", v, formatVersion)
		}
		l, err := decodeFlat(key, name, res[i+2:i+per])
		if err != nil {
			return raftlease.LeaseList{}, err
		}
		out.Leases = append(out.Leases, l)
	}
	return out, nil
}

// Watch implements raftlease.Store. Events come from the shared event
// stream, through this store's in-memory history of the last WatchRetain
// events: Watch first reads the stream to its end, then a FromRevision
// older than that history gets ErrCompacted. Without FromRevision, the
// watch starts after the revision Redis had reached when Watch read it.
// While Redis cannot be read, Watch fails with ErrUnavailable.
func (s *Store) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("%w: redisbridge: watch", raftlease.ErrClosed)
	}
	rev, err := s.awaitCatchUp(ctx)
	if err != nil {
		return nil, err
	}
	if req.FromRevision == 0 {
		req.FromRevision = rev + 1
	}
	ch, err := s.hub.Subscribe(ctx, req)
	if err != nil {
		return nil, err
	}
	// Count the watch while it is open: with none, the events loop reads
	// the stream only every PollInterval.
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed.Load() {
		return ch, nil // the hub closes ch
	}
	s.watchers.Add(1)
	s.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		s.watchers.Add(-1)
	})
	return ch, nil
}
