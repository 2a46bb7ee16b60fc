package redisbridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/redisbridge"
)

func TestOptionsValidate(t *testing.T) {
	if err := redisbridge.DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions: %v", err)
	}
	ok := []redisbridge.Options{
		{Addr: "localhost:6379"},
		{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, DB: 2},
		{ClusterAddrs: []string{"c1:7000"}},
		{ClusterAddrs: []string{"c1:7000"}, KeyPrefix: "app:{leases}:"},
		{Addr: "localhost:6379", KeyPrefix: "{x}"},
	}
	for _, o := range ok {
		if err := o.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", o, err)
		}
	}
	bad := []struct {
		opts  redisbridge.Options
		field string
	}{
		{redisbridge.Options{}, "Addr"},
		{redisbridge.Options{Addr: "a:1", ClusterAddrs: []string{"c:1"}}, "Addr"},
		{redisbridge.Options{MasterName: "m"}, "SentinelAddrs"},
		{redisbridge.Options{SentinelAddrs: []string{"s:1"}}, "MasterName"},
		{redisbridge.Options{ClusterAddrs: []string{"c:1"}, DB: 1}, "DB"},
		{redisbridge.Options{ClusterAddrs: []string{"c:1"}, KeyPrefix: "raftlease:"}, "KeyPrefix"},
		{redisbridge.Options{Addr: "a:1", KeyPrefix: "a{b"}, "KeyPrefix"},
		{redisbridge.Options{Addr: "a:1", KeyPrefix: "{}x"}, "KeyPrefix"},
		{redisbridge.Options{Addr: "a:1", DB: -1}, "DB"},
		{redisbridge.Options{Addr: "a:1", OperationTimeout: -time.Second}, "OperationTimeout"},
		{redisbridge.Options{Addr: "a:1", PollInterval: time.Microsecond}, "PollInterval"},
		{redisbridge.Options{Addr: "a:1", WatchRetain: -1}, "WatchRetain"},
		{redisbridge.Options{Addr: "a:1", EventRetain: 10, WatchRetain: 20}, "WatchRetain"},
		{redisbridge.Options{Addr: "a:1", Notifications: 9}, "Notifications"},
	}
	for _, b := range bad {
		err := b.opts.Validate()
		if !errors.Is(err, raftlease.ErrInvalidArgument) || !strings.Contains(err.Error(), "redisbridge.Options."+b.field) {
			t.Errorf("Validate(%+v) = %v, want an invalid argument naming %s", b.opts, err, b.field)
		}
		if _, err := redisbridge.New(b.opts); !errors.Is(err, raftlease.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want ErrInvalidArgument", b.opts, err)
		}
	}
	// Every problem is reported at once.
	err := redisbridge.Options{DB: -1, PollInterval: -1, WatchBuffer: -1}.Validate()
	for _, f := range []string{"Addr", "DB", "PollInterval", "WatchBuffer"} {
		if err == nil || !strings.Contains(err.Error(), "redisbridge.Options."+f) {
			t.Errorf("Validate with several problems: %v, want one naming %s", err, f)
		}
	}
}

func TestNewWithClientRefuses(t *testing.T) {
	if _, err := redisbridge.NewWithClient(nil, redisbridge.Options{}); !errors.Is(err, raftlease.ErrInvalidArgument) {
		t.Errorf("nil client: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := redisbridge.NewWithClient(c, redisbridge.Options{Addr: "127.0.0.1:1"}); !errors.Is(err, raftlease.ErrInvalidArgument) || !strings.Contains(err.Error(), "Addr") {
		t.Errorf("client and Addr: %v", err)
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := redisbridge.NewWithClient(ring, redisbridge.Options{}); !errors.Is(err, raftlease.ErrInvalidArgument) {
		t.Errorf("a Ring: %v", err)
	}
}
