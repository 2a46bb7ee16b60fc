package redisbridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// Defaults for the zero fields of Options.
const (
	// DefaultKeyPrefix is the key prefix on a standalone or Sentinel server.
	DefaultKeyPrefix = "raftlease:"
	// DefaultClusterKeyPrefix is the key prefix on Redis Cluster: its hash
	// tag puts every key of the store in one slot.
	DefaultClusterKeyPrefix = "{raftlease}:"
	// DefaultOperationTimeout bounds each call to Redis.
	DefaultOperationTimeout = 2 * time.Second
	// DefaultPollInterval is how often the watch machinery checks Redis
	// when nothing told it to.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultEventRetain is the approximate length the event stream is
	// trimmed to.
	DefaultEventRetain = 10000
	// DefaultWatchRetain is how many recent events each Store keeps in
	// memory for watches that resume from a revision.
	DefaultWatchRetain = 4096
	// DefaultWatchBuffer is the capacity of each watch channel.
	DefaultWatchBuffer = 256
)

// NotifyMode says whether a Store uses Redis keyspace notifications to learn
// that Redis expired a lease.
type NotifyMode uint8

const (
	// NotifyAuto uses keyspace notifications when the server has expired
	// events enabled (CONFIG GET notify-keyspace-events shows E or K, with x
	// or A), and polls otherwise. It never changes the server's config.
	NotifyAuto NotifyMode = iota
	// NotifyOff never uses keyspace notifications; the Store polls.
	NotifyOff
	// NotifyEnable turns keyspace notifications for expired events on
	// (CONFIG SET notify-keyspace-events, adding "Ex" to what is set) and
	// uses them. It changes the configuration of a server other
	// applications may share.
	NotifyEnable
)

func (m NotifyMode) String() string {
	switch m {
	case NotifyAuto:
		return "auto"
	case NotifyOff:
		return "off"
	case NotifyEnable:
		return "enable"
	}
	return fmt.Sprintf("NotifyMode(%d)", uint8(m))
}

// Options configure a Store. For New, set exactly one way to reach Redis:
// Addr (a standalone server), MasterName with SentinelAddrs (Sentinel), or
// ClusterAddrs (Redis Cluster). NewWithClient takes a client the caller
// built and then refuses these connection fields. Every other field has a
// working zero value.
type Options struct {
	// Addr is the host:port of a standalone Redis server.
	Addr string
	// DB is the database number (standalone and Sentinel only).
	DB int
	// Username and Password authenticate with AUTH, or with an ACL user
	// when Username is set.
	Username string
	Password string
	// TLS, when set, makes every connection use TLS with this config.
	TLS *tls.Config

	// MasterName and SentinelAddrs select a master through Redis Sentinel
	// (redis.NewFailoverClient).
	MasterName    string
	SentinelAddrs []string
	// SentinelUsername and SentinelPassword authenticate with the
	// sentinels, when they need it.
	SentinelUsername string
	SentinelPassword string

	// ClusterAddrs are seed addresses of a Redis Cluster
	// (redis.NewClusterClient).
	ClusterAddrs []string

	// PoolSize is the connection pool size (per node on Cluster); zero
	// means the driver's default (10 per CPU).
	PoolSize int

	// KeyPrefix namespaces the store's keys; two stores with different
	// prefixes on one server never see each other's leases. Zero means
	// DefaultKeyPrefix, or DefaultClusterKeyPrefix on Cluster, where the
	// prefix must contain a hash tag ("{...}"). It must not contain a '{'
	// without a later '}'.
	KeyPrefix string
	// OperationTimeout bounds every call to Redis (it shortens, never
	// extends, a ctx deadline). Zero means DefaultOperationTimeout.
	OperationTimeout time.Duration
	// PollInterval is how often the Store checks the event stream and the
	// deadline index when no notification told it to. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Notifications says whether to use keyspace notifications for
	// expiries (default NotifyAuto).
	Notifications NotifyMode
	// EventRetain is the approximate length the shared event stream is
	// trimmed to (XADD MAXLEN ~). Zero means DefaultEventRetain.
	EventRetain int
	// WatchRetain is how many recent events the Store keeps in memory so
	// that a watch can resume from a revision; older revisions get
	// ErrCompacted. Zero means DefaultWatchRetain.
	WatchRetain int
	// WatchBuffer is each watch channel's capacity. Zero means
	// DefaultWatchBuffer.
	WatchBuffer int

	// Clock drives the Store's timers (polling, expiry checks, retry
	// pauses); nil means the system clock. Lease deadlines are always on
	// the Redis server's clock.
	Clock raftlease.Clock
	// Logger receives the Store's logs; nil discards them.
	Logger hclog.Logger
}

// DefaultOptions returns options for a standalone server on localhost with
// every default filled in.
func DefaultOptions() Options {
	return Options{
		Addr:             "127.0.0.1:6379",
		KeyPrefix:        DefaultKeyPrefix,
		OperationTimeout: DefaultOperationTimeout,
		PollInterval:     DefaultPollInterval,
		EventRetain:      DefaultEventRetain,
		WatchRetain:      DefaultWatchRetain,
		WatchBuffer:      DefaultWatchBuffer,
	}
}

// Validate reports every problem with the options for New, by field name.
// It never changes o.
func (o Options) Validate() error {
	return errors.Join(o.validateConnection(), o.validateSettings(len(o.ClusterAddrs) > 0))
}

// validateForClient checks the options for NewWithClient.
func (o Options) validateForClient(cluster bool) error {
	var errs []error
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Addr", o.Addr != ""}, {"DB", o.DB != 0}, {"Username", o.Username != ""}, {"Password", o.Password != ""},
		{"TLS", o.TLS != nil}, {"MasterName", o.MasterName != ""}, {"SentinelAddrs", len(o.SentinelAddrs) > 0},
		{"SentinelUsername", o.SentinelUsername != ""}, {"SentinelPassword", o.SentinelPassword != ""},
		{"ClusterAddrs", len(o.ClusterAddrs) > 0}, {"PoolSize", o.PoolSize != 0},
	} {
		if f.set {
			errs = append(errs, fieldErr(f.name, "is set, but NewWithClient uses the client it is given"))
		}
	}
	return errors.Join(append(errs, o.validateSettings(cluster))...)
}

func (o Options) validateConnection() error {
	var errs []error
	modes := 0
	if o.Addr != "" {
		modes++
	}
	if o.MasterName != "" || len(o.SentinelAddrs) > 0 {
		modes++
		if o.MasterName == "" {
			errs = append(errs, fieldErr("MasterName", "must be set with SentinelAddrs"))
		}
		if len(o.SentinelAddrs) == 0 {
			errs = append(errs, fieldErr("SentinelAddrs", "must be set with MasterName"))
		}
	}
	if len(o.ClusterAddrs) > 0 {
		modes++
		if o.DB != 0 {
			errs = append(errs, fieldErr("DB", "must be 0 on Redis Cluster"))
		}
	}
	switch {
	case modes == 0:
		errs = append(errs, fieldErr("Addr", "set Addr, MasterName with SentinelAddrs, or ClusterAddrs"))
	case modes > 1:
		errs = append(errs, fieldErr("Addr", "set only one of Addr, MasterName with SentinelAddrs, and ClusterAddrs"))
	}
	for _, a := range append(append([]string{}, o.SentinelAddrs...), o.ClusterAddrs...) {
		if a == "" {
			errs = append(errs, fieldErr("SentinelAddrs/ClusterAddrs", "holds an empty address"))
			break
		}
	}
	if o.DB < 0 {
		errs = append(errs, fieldErr("DB", fmt.Sprintf("%d is negative", o.DB)))
	}
	if o.PoolSize < 0 {
		errs = append(errs, fieldErr("PoolSize", fmt.Sprintf("%d is negative", o.PoolSize)))
	}
	return errors.Join(errs...)
}

func (o Options) validateSettings(cluster bool) error {
	var errs []error
	if p := o.KeyPrefix; p != "" {
		if strings.Contains(p, "{") && !hasHashTag(p) {
			errs = append(errs, fieldErr("KeyPrefix", fmt.Sprintf("%q has a '{' without a hash tag: use {tag} with a non-empty tag, or no braces", p)))
		}
		if strings.ContainsAny(p, "\r\n\x00") {
			errs = append(errs, fieldErr("KeyPrefix", "must not contain CR, LF or NUL"))
		}
		if len(p) > 512 {
			errs = append(errs, fieldErr("KeyPrefix", fmt.Sprintf("is %d bytes, longer than 512", len(p))))
		}
		if cluster && !hasHashTag(p) {
			errs = append(errs, fieldErr("KeyPrefix", fmt.Sprintf("%q has no hash tag: on Redis Cluster every key of a store must share one slot, so the prefix needs one, like %q", p, DefaultClusterKeyPrefix)))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"OperationTimeout", o.OperationTimeout}, {"PollInterval", o.PollInterval}} {
		if d.v < 0 {
			errs = append(errs, fieldErr(d.name, fmt.Sprintf("%v is negative", d.v)))
		}
	}
	if o.PollInterval > 0 && o.PollInterval < time.Millisecond {
		errs = append(errs, fieldErr("PollInterval", fmt.Sprintf("%v is below 1ms", o.PollInterval)))
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"EventRetain", o.EventRetain}, {"WatchRetain", o.WatchRetain}, {"WatchBuffer", o.WatchBuffer}} {
		if n.v < 0 {
			errs = append(errs, fieldErr(n.name, fmt.Sprintf("%d is negative", n.v)))
		}
	}
	if o.EventRetain > 0 && o.WatchRetain > o.EventRetain {
		errs = append(errs, fieldErr("WatchRetain", fmt.Sprintf("%d is more than EventRetain %d: the stream would not hold what the store means to keep", o.WatchRetain, o.EventRetain)))
	}
	if o.Notifications > NotifyEnable {
		errs = append(errs, fieldErr("Notifications", fmt.Sprintf("unknown mode %d", o.Notifications)))
	}
	return errors.Join(errs...)
}

func fieldErr(field, reason string) error {
	return &raftlease.FieldError{Field: "redisbridge.Options." + field, Reason: reason}
}

// withDefaults returns o with every zero setting filled in.
func (o Options) withDefaults(cluster bool) Options {
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
		if cluster {
			o.KeyPrefix = DefaultClusterKeyPrefix
		}
	}
	if o.OperationTimeout == 0 {
		o.OperationTimeout = DefaultOperationTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.EventRetain == 0 {
		o.EventRetain = max(DefaultEventRetain, o.WatchRetain)
	}
	if o.WatchRetain == 0 {
		o.WatchRetain = min(DefaultWatchRetain, o.EventRetain)
	}
	if o.WatchBuffer == 0 {
		o.WatchBuffer = DefaultWatchBuffer
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	o.Clock = raftlease.OrSystem(o.Clock)
	return o
}

// maxTokenFloor is the largest TokenFloor the bridge accepts: Redis counters
// are signed 64-bit integers, and the token must be above the floor.
const maxTokenFloor = math.MaxInt64 - 1
