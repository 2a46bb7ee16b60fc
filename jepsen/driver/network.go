package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// Modes of partitioning.
const (
	// ModeHooks cuts links inside the nodes, through each node's own
	// transport fault layer (the unsafe test hooks): every node on
	// 127.0.0.1, no privileges needed.
	ModeHooks = "hooks"
	// ModeNetns gives every node its own network namespace, joined to a
	// bridge by a veth pair, and cuts links with iptables drops inside the
	// receiving node's namespace. Needs root, ip and iptables.
	ModeNetns = "netns"
)

// network places the nodes and cuts links between them.
type network interface {
	// place gives node n its address; index counts from 0.
	place(n *node, index int)
	// wrap is the command prefix that runs a node's process in its place.
	wrap(n *node) []string
	// setup prepares the network for the nodes (after place).
	setup(ctx context.Context, nodes []*node) error
	// cut replaces the cut links with links (none: heal).
	cut(ctx context.Context, links []nemesis.Link) error
	// teardown removes what setup made.
	teardown()
}

// --- hooks mode ---

type hooksNet struct {
	hooks *hooksClient
	ports func() int
	mu    sync.Mutex
	nodes []*node
	links []nemesis.Link
}

func (h *hooksNet) place(n *node, _ int) {
	n.ip = "127.0.0.1"
	n.raftAddr = fmt.Sprintf("127.0.0.1:%d", h.ports())
	n.httpAddr = fmt.Sprintf("127.0.0.1:%d", h.ports())
	n.hooksAddr = fmt.Sprintf("127.0.0.1:%d", h.ports())
}

func (h *hooksNet) wrap(*node) []string { return nil }

func (h *hooksNet) setup(_ context.Context, nodes []*node) error {
	h.mu.Lock()
	h.nodes = nodes
	h.mu.Unlock()
	return nil
}

// cut sends the whole set of cut links, with every peer's address, to
// every running node: each node's fault layer then refuses and black-holes
// its side of each cut link.
func (h *hooksNet) cut(ctx context.Context, links []nemesis.Link) error {
	h.mu.Lock()
	h.links = links
	nodes := h.nodes
	h.mu.Unlock()
	req := linksJSON{Peers: map[string][]string{}}
	for _, n := range nodes {
		req.Peers[n.id] = []string{n.raftAddr}
	}
	for _, l := range links {
		req.Cut = append(req.Cut, linkJSON{From: l.From, To: l.To})
	}
	var errs []error
	for _, n := range nodes {
		if !n.proc.Running() || n.proc.Paused() {
			continue
		}
		if err := h.hooks.post(ctx, n, "/v1/test/links", req); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reapply sends the current cuts to one node (after it restarted: its
// fault layer starts clean).
func (h *hooksNet) reapply(ctx context.Context) error {
	h.mu.Lock()
	links := h.links
	h.mu.Unlock()
	if len(links) == 0 {
		return nil
	}
	return h.cut(ctx, links)
}

func (h *hooksNet) teardown() {}

// freePorts hands out distinct free loopback ports.
type freePorts struct {
	mu   sync.Mutex
	used map[int]bool
}

func (f *freePorts) next() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used == nil {
		f.used = map[int]bool{}
	}
	for range 1000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !f.used[port] {
			f.used[port] = true
			return port
		}
	}
	panic("driver: no free port")
}

// --- netns mode ---

// Names of what netns mode creates; everything carrying the prefix is
// removed before a run and after it.
const (
	nsPrefix   = "jepsen-"
	nsBridge   = "jepsenbr0"
	nsSubnet   = "10.231.77."
	nsBridgeIP = nsSubnet + "254"
	nsVethPref = "jv-"
)

type nsNet struct {
	mu    sync.Mutex
	nodes []*node
}

func nsName(n *node) string { return nsPrefix + n.id }

func (s *nsNet) place(n *node, index int) {
	n.ip = fmt.Sprintf("%s%d", nsSubnet, index+1)
	n.raftAddr = n.ip + ":7080"
	n.httpAddr = n.ip + ":7070"
	n.hooksAddr = n.ip + ":7090"
}

func (s *nsNet) wrap(n *node) []string { return []string{"ip", "netns", "exec", nsName(n)} }

// NetnsAvailable reports why netns mode cannot run here (nil: it can).
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("netns mode needs root")
	}
	for _, tool := range []string{"ip", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns mode needs %s: %w", tool, err)
		}
	}
	return probeNetns()
}

// probeNetns checks that this root may create a namespace, a bridge and
// load iptables rules in the namespace (a container may forbid it), and
// removes what it made.
func probeNetns() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, br := nsPrefix+"probe", nsBridge+"p"
	defer func() {
		_ = run(context.Background(), "", "ip", "netns", "del", ns)
		_ = run(context.Background(), "", "ip", "link", "del", br)
	}()
	rules := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	for _, st := range []struct {
		stdin string
		argv  []string
	}{
		{"", []string{"ip", "netns", "add", ns}},
		{"", []string{"ip", "link", "add", br, "type", "bridge"}},
		{rules, []string{"ip", "netns", "exec", ns, "iptables-restore"}},
	} {
		if err := run(ctx, st.stdin, st.argv...); err != nil {
			return fmt.Errorf("netns mode unavailable here: %w", err)
		}
	}
	return nil
}

func run(ctx context.Context, stdin string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// CleanNetns removes every namespace, bridge and veth a netns run may have
// left behind (an interrupted run, say).
func CleanNetns() {
	ctx := context.Background()
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
				_ = run(ctx, "", "ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, nsVethPref) || name == nsBridge {
				_ = run(ctx, "", "ip", "link", "del", name)
			}
		}
	}
}

func (s *nsNet) setup(ctx context.Context, nodes []*node) error {
	if err := NetnsAvailable(); err != nil {
		return err
	}
	CleanNetns()
	s.mu.Lock()
	s.nodes = nodes
	s.mu.Unlock()
	steps := [][]string{
		{"ip", "link", "add", nsBridge, "type", "bridge"},
		{"ip", "addr", "add", nsBridgeIP + "/24", "dev", nsBridge},
		{"ip", "link", "set", nsBridge, "up"},
	}
	for _, n := range nodes {
		ns, veth := nsName(n), nsVethPref+n.id
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", veth, "master", nsBridge},
			[]string{"ip", "link", "set", veth, "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "addr", "add", n.ip + "/24", "dev", "eth0"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"},
			[]string{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		)
	}
	for _, st := range steps {
		if err := run(ctx, "", st...); err != nil {
			return fmt.Errorf("driver: netns setup: %w", err)
		}
	}
	return s.cut(ctx, nil)
}

// cut loads, in every node's namespace, an INPUT chain that drops what
// arrives from each node whose link to it is cut.
func (s *nsNet) cut(ctx context.Context, links []nemesis.Link) error {
	s.mu.Lock()
	nodes := s.nodes
	s.mu.Unlock()
	ip := map[string]string{}
	for _, n := range nodes {
		ip[n.id] = n.ip
	}
	drops := map[string][]string{}
	for _, l := range links {
		if from, ok := ip[l.From]; ok {
			drops[l.To] = append(drops[l.To], from)
		}
	}
	var errs []error
	for _, n := range nodes {
		var b strings.Builder
		b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		srcs := drops[n.id]
		sort.Strings(srcs)
		for _, src := range srcs {
			fmt.Fprintf(&b, "-A INPUT -s %s/32 -j DROP\n", src)
		}
		b.WriteString("COMMIT\n")
		if err := run(ctx, b.String(), "ip", "netns", "exec", nsName(n), "iptables-restore"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *nsNet) teardown() { CleanNetns() }
