package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServerEnv names the environment variable that overrides where
// StartRedis looks for the redis-server binary.
const RedisServerEnv = "RAFTLEASE_REDIS_SERVER"

// RedisOptions tune StartRedis. The zero value starts a plain standalone
// server that keeps nothing on disk.
type RedisOptions struct {
	// NotifyKeyspaceEvents, when set, is passed as --notify-keyspace-events
	// (for example "Ex" for expired keyevent notifications).
	NotifyKeyspaceEvents string
	// AppendOnly turns the append-only file on, fsynced on every write, so
	// that the data survives Stop and Restart. Without it a restarted
	// server starts empty.
	AppendOnly bool
	// Password, when set, is required by the server (requirepass); Client
	// authenticates with it.
	Password string
	// Cluster starts the server as a one-node Redis Cluster that owns every
	// slot, so that the cluster client and cluster rules (CROSSSLOT,
	// sharded pub/sub) are exercised.
	Cluster bool
	// SentinelFor, when set, starts a Redis Sentinel (redis-server
	// --sentinel) instead of a data server, monitoring that server under the
	// master name SentinelMasterName.
	SentinelFor *Redis
	// Args are extra redis-server arguments.
	Args []string
}

// SentinelMasterName is the master name a sentinel started with
// RedisOptions.SentinelFor monitors.
const SentinelMasterName = "raftlease"

// Redis is a real redis-server process started by StartRedis on a free port
// of 127.0.0.1, with its files in a t.TempDir(). It is stopped at test
// cleanup.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts RedisOptions

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	client *redis.Client
}

// redisStartWait bounds how long a server may take to answer PING.
const redisStartWait = 15 * time.Second

// StartRedis starts a redis-server and waits until it answers PING. Pass at
// most one RedisOptions. When no redis-server binary can be found (see
// RedisServerEnv), the test is skipped, or fails when the environment
// variable CI is set, so that CI never silently skips the Redis tests.
func StartRedis(t testing.TB, opts ...RedisOptions) *Redis {
	t.Helper()
	if len(opts) > 1 {
		t.Fatalf("StartRedis: pass at most one RedisOptions, got %d", len(opts))
	}
	var o RedisOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	bin, err := findRedisServer()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("StartRedis: %v (CI is set, so this is a failure, not a skip)", err)
		}
		t.Skipf("StartRedis: %v; install the redis-server package or set %s", err, RedisServerEnv)
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir(), opts: o}
	t.Cleanup(r.cleanup)

	// Another process may take the free port before the server binds it;
	// try a few ports.
	var lastErr error
	for range 5 {
		if r.port, lastErr = freePort(); lastErr != nil {
			continue
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	t.Fatalf("StartRedis: %v", lastErr)
	return nil
}

func findRedisServer() (string, error) {
	if p := os.Getenv(RedisServerEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", RedisServerEnv, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("redis-server not found in PATH, /usr/bin or /usr/local/bin")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Dir returns the server's working directory (logs, AOF, nodes.conf).
func (r *Redis) Dir() string { return r.dir }

// Options returns options for a client of this server.
func (r *Redis) Options() *redis.Options {
	return &redis.Options{Addr: r.Addr(), Password: r.opts.Password, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
}

// Client returns a client connected to the server, closed at test cleanup.
// On a Cluster server it is a plain client of the one node, which owns every
// slot.
func (r *Redis) Client() *redis.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		r.client = redis.NewClient(r.Options())
	}
	return r.client
}

func (r *Redis) args() []string {
	if m := r.opts.SentinelFor; m != nil {
		conf := filepath.Join(r.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil {
			// Sentinel rewrites its config file, so it is written once.
			body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\n", SentinelMasterName, m.port, SentinelMasterName)
			if m.opts.Password != "" {
				body += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMasterName, m.opts.Password)
			}
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				r.t.Fatalf("write sentinel.conf: %v", err)
			}
		}
		return append([]string{conf, "--sentinel", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--dir", r.dir, "--logfile", "redis.log", "--daemonize", "no"}, r.opts.Args...)
	}
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		"--logfile", "redis.log",
		"--daemonize", "no",
		"--save", "",
	}
	if r.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.opts.NotifyKeyspaceEvents != "" {
		args = append(args, "--notify-keyspace-events", r.opts.NotifyKeyspaceEvents)
	}
	if r.opts.Password != "" {
		args = append(args, "--requirepass", r.opts.Password)
	}
	if r.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	}
	return append(args, r.opts.Args...)
}

// start launches the process and waits for PING (and, for a cluster, for
// every slot to be served).
func (r *Redis) start() error {
	cmd := exec.Command(r.bin, r.args()...)
	cmd.Dir = r.dir
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()

	password := r.opts.Password
	if r.opts.SentinelFor != nil {
		password = ""
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: password, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(redisStartWait)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited during start-up: %s%s", r.port, stderr.String(), r.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		if err == nil && r.opts.Cluster {
			err = r.ensureSlots(ctx, c)
		}
		if err == nil && r.opts.SentinelFor != nil {
			err = c.Do(ctx, "SENTINEL", "get-master-addr-by-name", SentinelMasterName).Err()
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("redis-server on port %d not ready within %v: %v%s", r.port, redisStartWait, err, r.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ensureSlots gives the one cluster node every slot (once; nodes.conf keeps
// them across restarts) and reports an error until the cluster is ok.
func (r *Redis) ensureSlots(ctx context.Context, c *redis.Client) error {
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_state:ok") {
		return nil
	}
	if strings.Contains(info, "cluster_slots_assigned:0") {
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
			return err
		}
	}
	return errors.New("cluster state is not ok yet")
}

func (r *Redis) logTail() string {
	b, err := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "\nredis.log:\n" + string(b)
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and waits for the
// process to end. Without AppendOnly its data is gone. Stop on a stopped
// server does nothing.
func (r *Redis) Stop() {
	r.t.Helper()
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// kill ends the process at once (start-up failures).
func (r *Redis) kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and directory, waiting until it answers PING.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		r.t.Fatalf("Redis.Restart: %v", err)
	}
}

func (r *Redis) cleanup() {
	r.mu.Lock()
	c := r.client
	r.client = nil
	r.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	r.Stop()
}

// setParentDeathSignal asks Linux to kill the server when the test process
// dies, so that a crashed or timed-out test leaves no server behind. The
// field exists only on Linux, hence reflection.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig")
	if f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}
