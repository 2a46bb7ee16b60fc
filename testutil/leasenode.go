package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftlease/raftlease/transport"
)

// This file launches real `leasenode agent` processes for multi-process
// tests: the binary is built once per test binary, every agent gets free
// 127.0.0.1 ports and a data dir under t.TempDir(), and each process's
// output is captured to a file that is dumped when the test fails.

var leasenodeBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// LeasenodeBinary builds cmd/leasenode once per test binary (with the race
// detector when the test binary has it) and returns the path of the
// executable. A test binary that uses it should call
// RemoveLeasenodeBinary from its TestMain after m.Run, or the build is
// left in the system temp dir.
func LeasenodeBinary(t testing.TB) string {
	t.Helper()
	b := &leasenodeBuild
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "leasenode-test-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "leasenode")
		args := []string{"build", "-o", b.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/raftlease/raftlease/cmd/leasenode")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/leasenode: %v\n%s", err, out.String())
		}
	})
	if b.err != nil {
		t.Fatalf("build leasenode: %v", b.err)
	}
	return b.path
}

// RemoveLeasenodeBinary removes the binary LeasenodeBinary built, if any.
func RemoveLeasenodeBinary() {
	if leasenodeBuild.dir != "" {
		_ = os.RemoveAll(leasenodeBuild.dir)
	}
}

var handedOut struct {
	mu    sync.Mutex
	ports map[int]bool
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that FreePort has not returned before in this test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("free port: no new port in 100 tries")
	return 0
}

// LeasenodeOptions tune StartLeasenodes.
type LeasenodeOptions struct {
	// Profile is the agents' --profile; empty means "local".
	Profile string
	// AuthTokens, when set, are written to a token file every agent reads
	// with --auth-token-file; HTTP requests then need one. Token() returns
	// the first.
	AuthTokens []string
	// TLS, when set, are the PEM files every agent is started with
	// (--tls-cert, --tls-key, --tls-ca); ClientTLS is then used for the
	// helper's own requests.
	TLS       *LeasenodeTLS
	ClientTLS *tls.Config
	// ExtraArgs, when set, returns more agent flags for node i.
	ExtraArgs func(i int) []string
	// LogLevel is the agents' --log-level; empty means "debug".
	LogLevel string
}

// LeasenodeTLS names the PEM files of an agent's certificate.
type LeasenodeTLS struct{ Cert, Key, CA string }

// Leasenodes is a cluster of real `leasenode agent` processes on
// 127.0.0.1. Nodes are indexed 0..n-1 with ids "n0", "n1", ….
type Leasenodes struct {
	t      testing.TB
	bin    string
	opts   LeasenodeOptions
	dir    string
	tokens string // token file, when auth is on
	nodes  []*leasenodeProc
	http   *http.Client
}

// leasenodeProc is one agent: its fixed identity and the running process.
type leasenodeProc struct {
	id       string
	dataDir  string
	raftAddr string
	httpAddr string
	logPath  string
	args     []string // the flags it runs with

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	exitErr error
	paused  bool
	starts  int
}

// StartLeasenodes starts n agents: node 0 bootstraps a new cluster, the
// others join it through node 0's HTTP address (and retry until it
// answers). It waits until every node is a member and one leads. Every
// process is killed at test cleanup; when the test failed, each process's
// output is dumped to the test log.
func StartLeasenodes(t testing.TB, n int, opts LeasenodeOptions) *Leasenodes {
	t.Helper()
	c := NewLeasenodes(t, n, opts)
	for i := range n {
		c.Start(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.WaitForMembers(ctx, n)
	c.WaitForLeader(ctx)
	return c
}

// NewLeasenodes prepares n agents (ids, ports, data dirs, flags) without
// starting them; Start starts one.
func NewLeasenodes(t testing.TB, n int, opts LeasenodeOptions) *Leasenodes {
	t.Helper()
	if opts.Profile == "" {
		opts.Profile = "local"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	c := &Leasenodes{t: t, bin: LeasenodeBinary(t), opts: opts, dir: t.TempDir()}
	transportTLS := &http.Transport{TLSClientConfig: opts.ClientTLS, DisableKeepAlives: true}
	c.http = &http.Client{Transport: transportTLS, Timeout: 10 * time.Second}
	if len(opts.AuthTokens) > 0 {
		c.tokens = filepath.Join(c.dir, "tokens")
		if err := os.WriteFile(c.tokens, []byte(strings.Join(opts.AuthTokens, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p := &leasenodeProc{
			id:       fmt.Sprintf("n%d", i),
			raftAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
			httpAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		}
		p.dataDir = filepath.Join(c.dir, p.id, "data")
		p.logPath = filepath.Join(c.dir, p.id, "output.log")
		if err := os.MkdirAll(filepath.Dir(p.logPath), 0o700); err != nil {
			t.Fatal(err)
		}
		p.args = []string{"agent",
			"--id", p.id, "--data-dir", p.dataDir,
			"--raft-addr", p.raftAddr, "--http-addr", p.httpAddr,
			"--profile", opts.Profile, "--log-level", opts.LogLevel,
		}
		if i == 0 {
			p.args = append(p.args, "--bootstrap")
		} else {
			p.args = append(p.args, "--join", c.nodesHTTP0())
		}
		if c.tokens != "" {
			p.args = append(p.args, "--auth-token-file", c.tokens)
		}
		if opts.TLS != nil {
			p.args = append(p.args, "--tls-cert", opts.TLS.Cert, "--tls-key", opts.TLS.Key, "--tls-ca", opts.TLS.CA)
		}
		if opts.ExtraArgs != nil {
			p.args = append(p.args, opts.ExtraArgs(i)...)
		}
		c.nodes = append(c.nodes, p)
	}
	t.Cleanup(c.cleanup)
	return c
}

func (c *Leasenodes) nodesHTTP0() string {
	if len(c.nodes) == 0 {
		return ""
	}
	return c.nodes[0].httpAddr
}

// Binary returns the path of the leasenode executable.
func (c *Leasenodes) Binary() string { return c.bin }

// Size returns the number of nodes, running or not.
func (c *Leasenodes) Size() int { return len(c.nodes) }

// ID returns node i's id.
func (c *Leasenodes) ID(i int) string { return c.nodes[i].id }

// HTTPAddr returns node i's HTTP address (host:port).
func (c *Leasenodes) HTTPAddr(i int) string { return c.nodes[i].httpAddr }

// RaftAddr returns node i's Raft address (host:port).
func (c *Leasenodes) RaftAddr(i int) string { return c.nodes[i].raftAddr }

// DataDir returns node i's data dir.
func (c *Leasenodes) DataDir(i int) string { return c.nodes[i].dataDir }

// LogPath returns the file node i's output goes to.
func (c *Leasenodes) LogPath(i int) string { return c.nodes[i].logPath }

// Token returns the first auth token, or "".
func (c *Leasenodes) Token() string {
	if len(c.opts.AuthTokens) == 0 {
		return ""
	}
	return c.opts.AuthTokens[0]
}

// Scheme is "https" when the agents run with TLS, "http" otherwise.
func (c *Leasenodes) Scheme() string {
	if c.opts.TLS != nil {
		return "https"
	}
	return "http"
}

// URL returns node i's base URL, such as http://127.0.0.1:4321.
func (c *Leasenodes) URL(i int) string { return c.Scheme() + "://" + c.nodes[i].httpAddr }

// Endpoints returns every node's base URL, in index order.
func (c *Leasenodes) Endpoints() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.URL(i)
	}
	return out
}

// Start starts node i (again) with the same flags, data dir and ports. A
// node restarted from its data dir does not join again; it rejoins from its
// Raft state.
func (c *Leasenodes) Start(i int) {
	c.t.Helper()
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !closed(p.done) {
		c.t.Fatalf("start %s: already running", p.id)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	p.starts++
	fmt.Fprintf(logf, "==== start %d of %s: %s %s\n", p.starts, p.id, c.bin, strings.Join(p.args, " "))
	cmd := exec.Command(c.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = leasenodeSysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s: %v", p.id, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.paused, p.exitErr = cmd, done, false, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
}

// cleanEnv is the test's environment without LEASENODE_ variables, so a
// developer's settings never leak into the agents.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASENODE_") {
			out = append(out, kv)
		}
	}
	return out
}

func closed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Running reports whether node i's process is running (paused counts).
func (c *Leasenodes) Running(i int) bool {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !closed(p.done)
}

// Pid returns node i's process id, or 0 when it is not running.
func (c *Leasenodes) Pid(i int) int {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || closed(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

func (c *Leasenodes) signal(i int, sig syscall.Signal) (done chan struct{}, ok bool) {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || closed(p.done) {
		return p.done, false
	}
	if p.paused && sig != syscall.SIGCONT && sig != syscall.SIGKILL {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	_ = p.cmd.Process.Signal(sig)
	return p.done, true
}

// Kill kills node i with SIGKILL and waits for it to exit.
func (c *Leasenodes) Kill(i int) {
	c.t.Helper()
	done, ok := c.signal(i, syscall.SIGKILL)
	if ok {
		<-done
	}
}

// Stop sends node i SIGTERM (a graceful shutdown: a leader hands over
// leadership) and waits for it to exit, killing it after timeout. It
// returns the process's exit error (nil for status 0).
func (c *Leasenodes) Stop(i int, timeout time.Duration) error {
	c.t.Helper()
	done, ok := c.signal(i, syscall.SIGTERM)
	if !ok {
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		c.t.Errorf("%s did not exit within %v of SIGTERM; killing it", c.nodes[i].id, timeout)
		c.Kill(i)
	}
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Restart starts node i again after Kill or Stop.
func (c *Leasenodes) Restart(i int) { c.t.Helper(); c.Start(i) }

// Pause stops node i with SIGSTOP; Resume continues it.
func (c *Leasenodes) Pause(i int) {
	c.t.Helper()
	if _, ok := c.signal(i, syscall.SIGSTOP); ok {
		p := c.nodes[i]
		p.mu.Lock()
		p.paused = true
		p.mu.Unlock()
	}
}

// Resume continues node i after Pause.
func (c *Leasenodes) Resume(i int) {
	c.t.Helper()
	if _, ok := c.signal(i, syscall.SIGCONT); ok {
		p := c.nodes[i]
		p.mu.Lock()
		p.paused = false
		p.mu.Unlock()
	}
}

// Exited returns a channel closed when node i's current process exits.
func (c *Leasenodes) Exited(i int) <-chan struct{} {
	p := c.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (c *Leasenodes) cleanup() {
	for i := range c.nodes {
		c.Kill(i)
	}
	if c.t.Failed() {
		c.DumpLogs()
	}
}

// DumpLogs writes the tail of every node's output to the test log.
func (c *Leasenodes) DumpLogs() {
	const tail = 64 << 10
	for _, p := range c.nodes {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			c.t.Logf("---- %s: no output (%v)", p.id, err)
			continue
		}
		if len(b) > tail {
			b = append([]byte("…\n"), b[len(b)-tail:]...)
		}
		c.t.Logf("---- output of %s (%s):\n%s", p.id, p.logPath, b)
	}
}

// Do sends an HTTP request to node i (path such as "/v1/status", body
// nil or JSON) with the auth token when auth is on, and returns the status
// code and body.
func (c *Leasenodes) Do(ctx context.Context, i int, method, path string, body []byte) (int, []byte, error) {
	return c.DoToken(ctx, i, method, path, body, c.Token())
}

// DoToken is Do with an explicit bearer token ("" sends none).
func (c *Leasenodes) DoToken(ctx context.Context, i int, method, path string, body []byte, token string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(i)+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Status returns node i's GET /v1/status.
func (c *Leasenodes) Status(ctx context.Context, i int) (transport.StatusJSON, error) {
	code, body, err := c.Do(ctx, i, http.MethodGet, "/v1/status", nil)
	if err != nil {
		return transport.StatusJSON{}, err
	}
	if code != http.StatusOK {
		return transport.StatusJSON{}, fmt.Errorf("status %d: %s", code, body)
	}
	var st transport.StatusJSON
	if err := json.Unmarshal(body, &st); err != nil {
		return transport.StatusJSON{}, fmt.Errorf("decode status: %w: %s", err, body)
	}
	return st, nil
}

// Index returns the index of the node with id, or -1.
func (c *Leasenodes) Index(id string) int {
	for i, p := range c.nodes {
		if p.id == id {
			return i
		}
	}
	return -1
}

// Leader returns the index of the node that reports itself the serving
// leader, or -1. It asks every running node.
func (c *Leasenodes) Leader(ctx context.Context) int {
	for i := range c.nodes {
		if !c.Running(i) {
			continue
		}
		st, err := c.Status(ctx, i)
		if err == nil && st.Serving {
			return i
		}
	}
	return -1
}

// WaitForLeader waits until exactly one running node reports itself the
// serving leader and every running node that answers names it, and
// returns its index. It fails the test when ctx ends first.
func (c *Leasenodes) WaitForLeader(ctx context.Context) int {
	c.t.Helper()
	return c.waitLeader(ctx, -1)
}

// WaitForNewLeader is WaitForLeader for a leader other than node old.
func (c *Leasenodes) WaitForNewLeader(ctx context.Context, old int) int {
	c.t.Helper()
	return c.waitLeader(ctx, old)
}

func (c *Leasenodes) waitLeader(ctx context.Context, not int) int {
	c.t.Helper()
	var last string
	for {
		leader, why := c.agreedLeader(ctx, not)
		if leader >= 0 {
			return leader
		}
		last = why
		select {
		case <-ctx.Done():
			c.t.Fatalf("no agreed serving leader: %s", last)
			return -1
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Leasenodes) agreedLeader(ctx context.Context, not int) (int, string) {
	serving := -1
	var views []string
	leaderIDs := map[string]bool{}
	for i := range c.nodes {
		if !c.Running(i) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(rctx, i)
		cancel()
		if err != nil {
			views = append(views, fmt.Sprintf("%s: %v", c.nodes[i].id, err))
			continue
		}
		if st.Serving {
			if serving >= 0 {
				return -1, "two nodes serve"
			}
			serving = i
		}
		id := "none"
		if st.Leader != nil {
			id = st.Leader.ID
		}
		leaderIDs[id] = true
		views = append(views, fmt.Sprintf("%s: %s term %d leader %s", c.nodes[i].id, st.State, st.Term, id))
	}
	if serving < 0 || serving == not || len(leaderIDs) != 1 || !leaderIDs[c.nodes[serving].id] {
		return -1, strings.Join(views, "; ")
	}
	return serving, ""
}

// WaitForMembers waits until node 0's (or the leader's) configuration has
// n members.
func (c *Leasenodes) WaitForMembers(ctx context.Context, n int) {
	c.t.Helper()
	var last error
	for {
		for i := range c.nodes {
			if !c.Running(i) {
				continue
			}
			st, err := c.Status(ctx, i)
			if err != nil {
				last = err
				continue
			}
			if len(st.Members) == n {
				return
			}
			last = fmt.Errorf("%s sees %d members", c.nodes[i].id, len(st.Members))
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("cluster did not reach %d members: %v", n, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitReady waits until node i answers GET /readyz with 200.
func (c *Leasenodes) WaitReady(ctx context.Context, i int) {
	c.t.Helper()
	var last error
	for {
		code, body, err := c.Do(ctx, i, http.MethodGet, "/readyz", nil)
		if err == nil && code == http.StatusOK {
			return
		}
		if err == nil {
			err = fmt.Errorf("readyz %d: %s", code, body)
		}
		last = err
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s not ready: %v", c.nodes[i].id, errors.Join(last, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitApplied waits until every running node has applied at least index.
func (c *Leasenodes) WaitApplied(ctx context.Context, index uint64) {
	c.t.Helper()
	for i := range c.nodes {
		if !c.Running(i) {
			continue
		}
		for {
			st, err := c.Status(ctx, i)
			if err == nil && st.AppliedIndex >= index {
				break
			}
			select {
			case <-ctx.Done():
				c.t.Fatalf("%s did not apply index %d: %v (status %+v)", c.nodes[i].id, index, err, st)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// NewLeasenodeTLS writes a throw-away CA and one certificate it signs, for
// 127.0.0.1 and localhost, usable by every agent (as server and as client)
// and by the test's own client, to PEM files under t.TempDir(). It returns
// the files for LeasenodeOptions.TLS and a client configuration (with the
// certificate, for mutual TLS) for LeasenodeOptions.ClientTLS.
func NewLeasenodeTLS(t testing.TB) (*LeasenodeTLS, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raftlease test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "leasenode"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := &LeasenodeTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	for path, block := range map[string]*pem.Block{
		files.CA:   {Type: "CERTIFICATE", Bytes: caDER},
		files.Cert: {Type: "CERTIFICATE", Bytes: der},
		files.Key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return files, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}
