package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
	"github.com/raftlease/raftlease/transport"
)

// Store selection: --addr names a leasenode cluster (host:port or
// http(s)://host:port, any number), a Redis server (one redis:// or
// rediss:// URL; the commands then work through redisbridge with the same
// output), or, for `leasenode bench` only, an etcd cluster (etcd://).

// storeKind is the kind of store an --addr list names.
type storeKind uint8

const (
	storeCluster storeKind = iota
	storeRedis
	storeEtcd
)

func (k storeKind) String() string {
	switch k {
	case storeRedis:
		return "redis"
	case storeEtcd:
		return "etcd"
	}
	return "raftlease"
}

// leaseStore is what the lease, campaign and run commands need of a store.
type leaseStore interface {
	raftlease.Store
	Close() error
}

// redisTarget is a parsed redis:// or rediss:// URL.
type redisTarget struct {
	Addr     string // host:port
	DB       int
	Username string
	Password string
	TLS      bool
	// Display is the URL without its password, for reports.
	Display string
}

// addrKind returns the kind of store one --addr value names.
func addrKind(value string) storeKind {
	v := strings.ToLower(strings.TrimSpace(value))
	switch {
	case strings.HasPrefix(v, "redis://"), strings.HasPrefix(v, "rediss://"):
		return storeRedis
	case strings.HasPrefix(v, "etcd://"):
		return storeEtcd
	}
	return storeCluster
}

// parseRedisURL parses redis://[user:password@]host:port[/db] (rediss://
// for TLS). Query options are refused: every connection setting is a flag.
func parseRedisURL(flagName, value string) (redisTarget, error) {
	bad := func(format string, args ...any) (redisTarget, error) {
		return redisTarget{}, usagef("--%s %q: %s (want redis://[user:password@]host:port[/db] or rediss://…)", flagName, redact(value), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(strings.TrimSpace(value))
	if err != nil {
		return bad("not a URL")
	}
	var t redisTarget
	switch strings.ToLower(u.Scheme) {
	case "redis":
	case "rediss":
		t.TLS = true
	default:
		return bad("scheme must be redis or rediss")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("query options are not supported; use the flags")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return bad("want host:port")
	}
	t.Addr = u.Host
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return bad("the path must be a database number")
		}
		t.DB = db
	}
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
		if _, hasPassword := u.User.Password(); !hasPassword {
			// redis://secret@host: a lone user-info is the password, as
			// redis-cli -u and go-redis read it.
			t.Username, t.Password = "", u.User.Username()
		}
	}
	t.Display = redact(value)
	return t, nil
}

// redact hides the password of a URL.
func redact(value string) string {
	u, err := url.Parse(strings.TrimSpace(value))
	if err != nil || u.User == nil {
		return value
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// parseEtcdAddrs turns etcd://host:port values into gateway base URLs.
func parseEtcdAddrs(flagName string, values []string) ([]string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		u, err := url.Parse(strings.TrimSpace(v))
		if err != nil || strings.ToLower(u.Scheme) != "etcd" || u.User != nil || u.RawQuery != "" || (u.Path != "" && u.Path != "/") {
			return nil, usagef("--%s %q: want etcd://host:port (etcd's v3 JSON gateway, plain HTTP)", flagName, v)
		}
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return nil, usagef("--%s %q: want etcd://host:port", flagName, v)
		}
		out = append(out, "http://"+u.Host)
	}
	return out, nil
}

// storeKindOf returns the kind of store an --addr list names and checks
// that its values do not mix kinds. An empty list is the default cluster
// endpoint.
func storeKindOf(flagName string, values []string) (storeKind, error) {
	if len(values) == 0 {
		return storeCluster, nil
	}
	kind := addrKind(values[0])
	for _, v := range values[1:] {
		if addrKind(v) != kind {
			return kind, usagef("--%s: %q and %q name different kinds of store; give one", flagName, redact(values[0]), redact(v))
		}
	}
	if kind == storeRedis && len(values) > 1 {
		return kind, usagef("--%s: give one redis:// URL (the bridge talks to one standalone server)", flagName)
	}
	return kind, nil
}

// validateAddrs checks --addr and the flags that go with its kind of store.
func (g *globalFlags) validateAddrs() error {
	kind, err := storeKindOf("addr", g.Addr)
	if err != nil {
		return err
	}
	var errs []error
	switch kind {
	case storeRedis:
		t, err := parseRedisURL("addr", g.Addr[0])
		if err != nil {
			return err
		}
		if t.Password != "" && (g.AuthToken != "" || g.AuthTokenFile != "") {
			errs = append(errs, usagef("--auth-token/--auth-token-file and a password in the redis:// URL conflict; give one"))
		}
		if g.TLS.enabled() && !t.TLS {
			errs = append(errs, usagef("--tls-* flags need a rediss:// URL"))
		}
		if (g.TLS.Cert == "") != (g.TLS.Key == "") {
			errs = append(errs, usagef("--tls-cert and --tls-key go together"))
		}
		if err := (redisbridge.Options{Addr: t.Addr, KeyPrefix: g.RedisPrefix}).Validate(); err != nil {
			errs = append(errs, usagef("--redis-prefix %q: %s", g.RedisPrefix, fieldReason(err)))
		}
	case storeEtcd:
		if _, err := parseEtcdAddrs("addr", g.Addr); err != nil {
			errs = append(errs, err)
		}
	default:
		for _, a := range g.Addr {
			if _, _, err := normalizeEndpoint("addr", a); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, g.TLS.validate(false))
	}
	if g.RedisPrefix != "" && kind != storeRedis {
		errs = append(errs, usagef("--redis-prefix needs a redis:// --addr"))
	}
	return errors.Join(errs...)
}

// storeKind returns the kind of store --addr names (already validated).
func (g *globalFlags) storeKind() storeKind {
	kind, _ := storeKindOf("addr", g.Addr)
	return kind
}

// requireCluster refuses a redis:// or etcd:// --addr for commands that
// only a leasenode cluster has (status, members, snapshot, migrate's
// target).
func (g *globalFlags) requireCluster() error {
	switch g.storeKind() {
	case storeRedis:
		return usagef("--addr %s names a Redis server: this command needs a leasenode cluster (Redis has no Raft status, members or snapshots); the lease commands, watch, campaign and run work on Redis", redact(g.Addr[0]))
	case storeEtcd:
		return usagef("--addr %s names etcd, which only `leasenode bench` speaks to", g.Addr[0])
	}
	return nil
}

// newStore builds the store --addr names: the cluster client, or the Redis
// bridge.
func (g *globalFlags) newStore() (leaseStore, error) {
	switch g.storeKind() {
	case storeRedis:
		return g.newRedisStore("addr", g.Addr[0], g.RedisPrefix, true, redisbridge.Options{})
	case storeEtcd:
		return nil, g.requireCluster()
	}
	c, err := g.newClient()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newRedisStore builds a bridge store for the URL given to --flagName;
// base carries settings (pool size, notifications) that the command
// chooses. With ownFlags, the global --auth-token* and --tls-* flags are
// the Redis server's (--addr is the Redis server); otherwise they belong
// to the cluster (migrate), and a rediss:// URL is verified with the
// system's roots.
func (g *globalFlags) newRedisStore(flagName, rawURL, prefix string, ownFlags bool, base redisbridge.Options) (*redisStore, error) {
	t, err := parseRedisURL(flagName, rawURL)
	if err != nil {
		return nil, err
	}
	o := base
	o.Addr, o.DB, o.Username, o.Password = t.Addr, t.DB, t.Username, t.Password
	o.KeyPrefix = prefix
	if o.Password == "" && ownFlags {
		switch {
		case g.AuthTokenFile != "":
			tokens, err := readTokenFile("auth-token-file", g.AuthTokenFile)
			if err != nil {
				return nil, err
			}
			o.Password = tokens[0]
		case g.AuthToken != "":
			o.Password = g.AuthToken
		}
	}
	if o.OperationTimeout == 0 {
		o.OperationTimeout = g.Timeout
	}
	if t.TLS {
		host, _, _ := net.SplitHostPort(t.Addr)
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if ownFlags && g.TLS.enabled() {
			cert, pool, err := g.TLS.load()
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = pool // nil: the system's roots
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
		}
		if ownFlags && g.TLS.ServerName != "" {
			cfg.ServerName = g.TLS.ServerName
		}
		o.TLS = cfg
	}
	s, err := redisbridge.New(o)
	if errors.Is(err, raftlease.ErrInvalidArgument) {
		return nil, usagef("--%s %s: %v", flagName, t.Display, err)
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flagName, t.Display, redisAuthErr(err))
	}
	return &redisStore{Store: s}, nil
}

// redisStore is the bridge with Redis's authentication and permission
// refusals reported as unauthorized (exit status 4, code "unauthorized"),
// as the cluster's are.
type redisStore struct{ *redisbridge.Store }

// redisReply is go-redis's marker of an error reply from the server.
type redisReply interface{ RedisError() }

func redisAuthErr(err error) error {
	var reply redisReply
	if err == nil || !errors.As(err, &reply) {
		return err
	}
	msg := err.Error()
	for _, code := range []string{"NOAUTH", "WRONGPASS", "NOPERM", "ERR invalid password", "ERR AUTH"} {
		if strings.Contains(msg, code) {
			return fmt.Errorf("%w: %w", transport.ErrUnauthorized, err)
		}
	}
	return err
}

func (s *redisStore) Acquire(ctx context.Context, req raftlease.AcquireRequest) (raftlease.Lease, error) {
	l, err := s.Store.Acquire(ctx, req)
	return l, redisAuthErr(err)
}

func (s *redisStore) Renew(ctx context.Context, req raftlease.RenewRequest) (raftlease.Lease, error) {
	l, err := s.Store.Renew(ctx, req)
	return l, redisAuthErr(err)
}

func (s *redisStore) Release(ctx context.Context, req raftlease.ReleaseRequest) error {
	return redisAuthErr(s.Store.Release(ctx, req))
}

func (s *redisStore) Get(ctx context.Context, name string, opts raftlease.ReadOptions) (raftlease.Lease, error) {
	l, err := s.Store.Get(ctx, name, opts)
	return l, redisAuthErr(err)
}

func (s *redisStore) List(ctx context.Context, prefix string, opts raftlease.ReadOptions) (raftlease.LeaseList, error) {
	ll, err := s.Store.List(ctx, prefix, opts)
	return ll, redisAuthErr(err)
}

func (s *redisStore) Watch(ctx context.Context, req raftlease.WatchRequest) (<-chan raftlease.Event, error) {
	ch, err := s.Store.Watch(ctx, req)
	return ch, redisAuthErr(err)
}

func (s *redisStore) Export(ctx context.Context) ([]redisbridge.ExportedLease, error) {
	out, err := s.Store.Export(ctx)
	return out, redisAuthErr(err)
}
