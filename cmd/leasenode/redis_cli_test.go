package main_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/testutil"
	"github.com/raftlease/raftlease/transport"
)

// TestRedisCLI runs the lease commands as processes against a real
// redis-server (redis://) and a real 3-node cluster, and checks that both
// print the same JSON documents (the same fields) and exit with the same
// statuses; that cluster-only commands refuse a redis:// address; and that
// `leasenode bench` measures both.
func TestRedisCLI(t *testing.T) {
	r := testutil.StartRedis(t)
	c := testutil.StartLeasenodes(t, 3, testutil.LeasenodeOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	c.WaitForLeader(ctx)
	bin := c.Binary()
	redisAddr := "redis://" + r.Addr()

	// Every document of the lease commands, by store.
	docs := map[string]map[string][]string{}
	for _, store := range []struct{ name, addr string }{{"cluster", c.HTTPAddr(1)}, {"redis", redisAddr}} {
		t.Run(store.name, func(t *testing.T) {
			docs[store.name] = cliSession(t, bin, store.addr)
		})
	}
	require.Contains(t, docs, "cluster")
	require.Contains(t, docs, "redis")
	for step, keys := range docs["cluster"] {
		assert.Equal(t, keys, docs["redis"][step], "%s: the same JSON fields on both stores", step)
	}
	assert.Len(t, docs["redis"], len(docs["cluster"]))

	t.Run("ClusterOnlyCommands", func(t *testing.T) {
		for _, args := range [][]string{
			{"status"}, {"members", "list"}, {"snapshot", "save", filepath.Join(t.TempDir(), "snap")},
		} {
			res := runCLI(t, bin, nil, append(args, "--addr", redisAddr)...)
			assert.Equal(t, 2, res.status, "%v on redis: usage error", args)
			assert.Contains(t, res.stderr, "Redis", "%v says why", args)
		}
		res := runCLI(t, bin, nil, "get", "x", "--addr", "etcd://127.0.0.1:2379")
		assert.Equal(t, 2, res.status, "etcd:// is only for bench")
	})

	t.Run("BadAddresses", func(t *testing.T) {
		for _, addr := range []string{
			"redis://" + r.Addr() + "/notadb", "redis://" + r.Addr() + "?dial_timeout=1s", "redis://nohostport",
			redisAddr + "," + redisAddr, redisAddr + "," + c.HTTPAddr(0), "ftp://" + r.Addr(),
		} {
			res := runCLI(t, bin, nil, "get", "x", "--addr", addr)
			assert.Equal(t, 2, res.status, "--addr %s: usage error", addr)
		}
		res := runCLI(t, bin, nil, "get", "x", "--addr", c.HTTPAddr(0), "--redis-prefix", "p:")
		assert.Equal(t, 2, res.status, "--redis-prefix needs a redis:// address")
		res = runCLI(t, bin, nil, "get", "x", "--addr", "redis://127.0.0.1:1", "--timeout", "2s")
		assert.Equal(t, 3, res.status, "unreachable redis: unavailable")
	})

	t.Run("Prefix", func(t *testing.T) {
		res := runCLI(t, bin, nil, "acquire", "prefixed", "--holder", "p", "--addr", redisAddr, "--redis-prefix", "other:", "-o", "json")
		require.Equal(t, 0, res.status, res.stderr)
		res = runCLI(t, bin, nil, "get", "prefixed", "--addr", redisAddr)
		assert.Equal(t, 1, res.status, "another prefix is another store")
		res = runCLI(t, bin, []string{"LEASENODE_REDIS_PREFIX=other:"}, "get", "prefixed", "--addr", redisAddr, "-o", "json")
		require.Equal(t, 0, res.status, res.stderr)
		keys, err := r.Client().Keys(ctx, "other:*").Result()
		require.NoError(t, err)
		assert.Contains(t, keys, "other:{prefixed}:lease")
	})

	t.Run("Watch", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, bin, "watch", "--prefix", "watched/", "-o", "json", "--addr", redisAddr)
		cmd.Env = cleanEnv()
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		events := make(chan transport.EventJSON, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var ev transport.EventJSON
				if json.Unmarshal(sc.Bytes(), &ev) == nil {
					events <- ev
				}
			}
			close(events)
		}()
		// The watch starts from the revision it lists first; acquire until
		// it has started and reported one.
		var got transport.EventJSON
		waitFor(t, 30*time.Second, "the watch to report an acquisition", func() bool {
			res := runCLI(t, bin, nil, "acquire", "watched/a", "--holder", "w", "--addr", redisAddr, "-o", "json")
			require.Equal(t, 0, res.status, res.stderr)
			select {
			case got = <-events:
				return true
			case <-time.After(500 * time.Millisecond):
				return false
			}
		})
		assert.Contains(t, []string{"acquired", "renewed"}, got.Type)
		assert.Equal(t, "watched/a", got.Lease.Name)
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		require.NoError(t, cmd.Wait(), "exit status 0 on SIGINT")
	})

	t.Run("Bench", func(t *testing.T) {
		for _, store := range []struct{ label, addr string }{{"raftlease", c.HTTPAddr(0)}, {"redis", redisAddr}} {
			res := runCLI(t, bin, nil, "bench", "--addr", store.addr, "--workload", "acquire-release,renew",
				"--callers", "1,3", "--duration", "300ms", "--warmup", "50ms", "-o", "json")
			require.Equal(t, 0, res.status, res.stderr)
			lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
			require.Len(t, lines, 4, "two workloads × two caller counts")
			for _, line := range lines {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &m), line)
				assert.Equal(t, store.label, m["store"])
				assert.Positive(t, m["ops"], line)
				assert.Positive(t, m["ops_per_sec"], line)
				assert.Positive(t, m["p99_ms"], line)
				assert.GreaterOrEqual(t, m["p99_ms"], m["p50_ms"], line)
				assert.EqualValues(t, 0, m["errors"], line)
			}
		}
		// The bench's leases are gone afterwards.
		res := runCLI(t, bin, nil, "list", "--prefix", "bench/", "--addr", redisAddr, "-o", "json")
		require.Equal(t, 0, res.status, res.stderr)
		assert.Contains(t, res.stdout, `"leases":[]`)
	})
}

// TestRedisAuth: a password-protected redis-server; a missing or wrong
// password is unauthorized (exit status 4), as the cluster's missing token
// is; the password comes from the URL or from --auth-token.
func TestRedisAuth(t *testing.T) {
	r := testutil.StartRedis(t, testutil.RedisOptions{Password: "s3cret"})
	bin := testutil.LeasenodeBinary(t)
	res := runCLI(t, bin, nil, "get", "x", "--addr", "redis://"+r.Addr(), "-o", "json")
	assert.Equal(t, 4, res.status, "no password")
	assert.Equal(t, transport.CodeUnauthorized, errorCode(t, []byte(res.stdout)))
	res = runCLI(t, bin, nil, "get", "x", "--addr", "redis://:badpass123@"+r.Addr())
	assert.Equal(t, 4, res.status, "wrong password")
	assert.NotContains(t, res.stderr, "badpass123", "the password is not echoed")
	res = runCLI(t, bin, nil, "acquire", "x", "--holder", "h", "--addr", "redis://:s3cret@"+r.Addr())
	assert.Equal(t, 0, res.status, res.stderr)
	res = runCLI(t, bin, []string{"LEASENODE_AUTH_TOKEN=s3cret"}, "get", "x", "--addr", "redis://"+r.Addr())
	assert.Equal(t, 0, res.status, res.stderr)
	res = runCLI(t, bin, nil, "get", "x", "--addr", "redis://default:s3cret@"+r.Addr()+"/0")
	assert.Equal(t, 0, res.status, "ACL user default: %s", res.stderr)
}

// cliSession runs acquire, get, renew, list and release, with their
// refusals, against addr, checks their statuses, and returns the sorted
// JSON field names of every document printed, by step.
func cliSession(t *testing.T, bin, addr string) map[string][]string {
	t.Helper()
	docs := map[string][]string{}
	cli := func(want int, step string, args ...string) cliResult {
		t.Helper()
		res := runCLI(t, bin, nil, append(args, "--addr", addr)...)
		require.Equal(t, want, res.status, "%s: %s", step, res.stderr)
		if strings.Contains(strings.Join(args, " "), "-o json") {
			docs[step] = jsonKeys(t, res.stdout)
		}
		return res
	}
	res := cli(0, "acquire", "acquire", "shape/job", "--holder", "alice", "--ttl", "30s", "--meta", "addr=10.0.0.9:80", "-o", "json")
	var l transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &l))
	assert.Equal(t, "alice", l.Holder)
	assert.Equal(t, "10.0.0.9:80", l.Metadata["addr"])
	assert.EqualValues(t, 30000, l.TTLMs)
	assert.Positive(t, l.Token)
	token := strconv.FormatUint(l.Token, 10)

	res = cli(1, "acquire held", "acquire", "shape/job", "--holder", "bob", "-o", "json")
	assert.Equal(t, transport.CodeLeaseHeld, errorCode(t, []byte(res.stdout)))
	res = cli(1, "acquire held (table)", "acquire", "shape/job", "--holder", "bob")
	assert.Contains(t, res.stderr, "held by alice")
	cli(0, "acquire again", "acquire", "shape/job", "--holder", "alice", "--ttl", "30s", "-o", "json")

	res = cli(0, "get", "get", "shape/job", "-o", "json")
	var got transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
	assert.Equal(t, l.Token, got.Token, "re-acquire keeps the token")
	res = cli(0, "get (table)", "get", "shape/job")
	assert.Contains(t, res.stdout, "holder:")
	assert.Contains(t, res.stdout, "alice")
	cli(0, "get stale", "get", "shape/job", "--stale", "-o", "json")
	res = cli(1, "get missing", "get", "shape/none", "-o", "json")
	assert.Equal(t, transport.CodeNotFound, errorCode(t, []byte(res.stdout)))

	res = cli(0, "renew", "renew", "shape/job", "--holder", "alice", "--token", token, "--ttl", "20s", "-o", "json")
	var renewed transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &renewed))
	assert.Equal(t, l.Token, renewed.Token)
	assert.EqualValues(t, 20000, renewed.TTLMs)
	res = cli(1, "renew wrong token", "renew", "shape/job", "--holder", "alice", "--token", strconv.FormatUint(l.Token+100, 10), "-o", "json")
	assert.Equal(t, transport.CodeNotHolder, errorCode(t, []byte(res.stdout)))

	res = cli(0, "list", "list", "--prefix", "shape/", "-o", "json")
	var ll transport.LeaseListJSON
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &ll))
	require.Len(t, ll.Leases, 1)
	assert.Equal(t, "shape/job", ll.Leases[0].Name)
	assert.Positive(t, ll.Revision)
	var raw struct{ Leases []json.RawMessage }
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &raw))
	docs["list: lease"] = jsonKeys(t, string(raw.Leases[0]))
	res = cli(0, "list (table)", "list", "--prefix", "shape/")
	assert.Contains(t, res.stdout, "shape/job")
	assert.Contains(t, res.stdout, "(1 lease at revision")

	cli(0, "release", "release", "shape/job", "--holder", "alice", "--token", token, "-o", "json")
	res = cli(1, "release again", "release", "shape/job", "--holder", "alice", "--token", token, "-o", "json")
	assert.Equal(t, transport.CodeNotHolder, errorCode(t, []byte(res.stdout)))
	res = cli(0, "acquire after release", "acquire", "shape/job", "--holder", "bob", "-o", "json")
	var next transport.LeaseJSON
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &next))
	assert.Greater(t, next.Token, l.Token, "a new holder gets a larger token")
	cli(0, "release bob", "release", "shape/job", "--holder", "bob", "--token", strconv.FormatUint(next.Token, 10), "-o", "json")

	cli(2, "usage: no holder", "acquire", "shape/job")
	cli(2, "usage: ttl too short", "acquire", "shape/job", "--holder", "a", "--ttl", "1ms")
	return docs
}

// jsonKeys returns the sorted top-level field names of a JSON document.
func jsonKeys(t *testing.T, doc string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(doc), &m), doc)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestRedisElection: `leasenode campaign` and `leasenode run` on Redis. Two
// campaigners: one gains, and when it stops (it releases) the other gains
// with a larger token. `run` starts its child with the lease's token and
// releases the lease when the child exits.
func TestRedisElection(t *testing.T) {
	r := testutil.StartRedis(t)
	bin := testutil.LeasenodeBinary(t)
	addr := "redis://" + r.Addr()
	ctx := ctxTimeout(t, 90*time.Second)

	t.Run("Campaign", func(t *testing.T) {
		type participant struct {
			cmd     *exec.Cmd
			changes chan map[string]any
		}
		start := func(holder string) *participant {
			cmd := exec.CommandContext(ctx, bin, "campaign", "redis/leader", "--holder", holder,
				"--profile", "fast", "-o", "json", "--addr", addr)
			cmd.Env = cleanEnv()
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			p := &participant{cmd: cmd, changes: make(chan map[string]any, 64)}
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var m map[string]any
					if json.Unmarshal(sc.Bytes(), &m) == nil {
						p.changes <- m
					}
				}
				close(p.changes)
			}()
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return p
		}
		gained := func(p *participant) uint64 {
			t.Helper()
			for {
				select {
				case m, ok := <-p.changes:
					require.True(t, ok, "participant exited")
					if m["event"] == "gained" {
						return uint64(m["token"].(float64))
					}
				case <-ctx.Done():
					t.Fatal("no gained change")
				}
			}
		}
		a := start("a")
		first := gained(a)
		b := start("b")
		require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
		second := gained(b)
		assert.Greater(t, second, first)
		require.NoError(t, a.cmd.Wait(), "campaign exits 0 on SIGTERM")
		var sawLost bool
		for m := range a.changes {
			sawLost = sawLost || m["event"] == "lost"
		}
		assert.True(t, sawLost, "a printed that it lost leadership")
	})

	t.Run("Run", func(t *testing.T) {
		self, err := os.Executable()
		require.NoError(t, err)
		dir := t.TempDir()
		cmd := exec.CommandContext(ctx, bin, "run", "redis/job", "--holder", "runner", "--ttl", "3s", "--grace", "500ms",
			"--addr", addr, "--", self, "-test.run=^$")
		cmd.Env = append(cleanEnv(), childModeEnv+"=cooperative", childDirEnv+"="+dir)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		var info childInfo
		waitFor(t, 30*time.Second, "the child to start", func() bool {
			var ok bool
			info, ok = readChildInfo(dir)
			return ok
		})
		assert.Equal(t, "redis/job", info.Lease)
		assert.Equal(t, "runner", info.Holder)
		res := runCLI(t, bin, nil, "get", "redis/job", "--addr", addr, "-o", "json")
		require.Equal(t, 0, res.status, res.stderr)
		var held transport.LeaseJSON
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &held))
		assert.Equal(t, "runner", held.Holder)
		assert.Equal(t, strconv.FormatUint(held.Token, 10), info.Token, "the child's token is the lease's")

		require.NoError(t, os.WriteFile(filepath.Join(dir, childExitFile), []byte("7"), 0o600))
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 7, ee.ExitCode(), "run exits with the child's status")
		res = runCLI(t, bin, nil, "get", "redis/job", "--addr", addr)
		assert.Equal(t, 1, res.status, "run released the lease")
	})
}
