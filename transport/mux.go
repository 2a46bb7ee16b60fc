package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// Kind names the protocol a connection carries. The dialer writes it in the
// connection header and the Mux hands the connection to the Layer of that
// kind.
type Kind byte

const (
	// Kind 0 is reserved (refused). KindRaft carries hashicorp/raft's NetworkTransport protocol.
	KindRaft Kind = 1
	// KindForward carries the forwarding RPC (Serve and Client).
	KindForward Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindRaft:
		return "raft"
	case KindForward:
		return "forward"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

const (
	// headerVersion is the first byte of every connection: it marks a
	// raftlease transport connection and its header version (1). An
	// incompatible header gets a new byte.
	headerVersion byte = 0xB1
	// MaxNodeIDLen is the longest node id a header may carry, in bytes.
	MaxNodeIDLen = raftlease.MaxHolderLen
	// DefaultHandshakeTimeout bounds the TLS handshake and header read of
	// an incoming connection when Config.HandshakeTimeout is zero.
	DefaultHandshakeTimeout = 5 * time.Second
	// maxPendingHandshakes bounds the incoming connections that are in
	// their handshake or waiting for their layer's Accept. Beyond it new
	// connections are closed at once.
	maxPendingHandshakes = 1024
)

// Config configures a Mux.
type Config struct {
	// BindAddr is the TCP address to listen on; "127.0.0.1:0" picks a free
	// port.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes dial. Empty means the bound
	// address, which must then not be an unspecified address (0.0.0.0, ::).
	AdvertiseAddr string
	// NodeID is this node's id, sent in the header of every outgoing
	// connection so the receiver (and the fault layer) knows the peer. At
	// most MaxNodeIDLen bytes.
	NodeID string
	// TLS, when set, secures both accepted and dialed connections. It must
	// carry this node's certificate. Accepting, when ClientCAs is set and
	// ClientAuth is left at NoClientCert, the Mux requires and verifies a
	// client certificate (mutual TLS). Dialing, RootCAs verifies the peer
	// and, when ServerName is empty, the host of the dialed address is the
	// name checked. Nil means plaintext.
	TLS *tls.Config
	// HandshakeTimeout bounds the TLS handshake and header read of each
	// incoming connection; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Faults, when set, injects network faults (tests only). Every Mux of an
	// in-process test cluster shares one.
	Faults *Faults
	// Logger receives the Mux's logs; nil means no logging.
	Logger hclog.Logger
}

// Mux listens on one TCP port and routes each incoming connection, by the
// kind in its header, to a Layer.
type Mux struct {
	cfg       Config
	logger    hclog.Logger
	ln        net.Listener
	addr      string
	serverTLS *tls.Config
	clientTLS *tls.Config
	timeout   time.Duration

	mu         sync.Mutex
	layers     map[Kind]*Layer
	added      chan struct{}         // closed and replaced when a layer is added
	pending    map[net.Conn]struct{} // raw conns in their handshake I/O
	handshakes int                   // handshake goroutines running
	closed     bool

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Listen validates cfg, binds the listener and starts the accept loop.
func Listen(cfg Config) (*Mux, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.BindAddr, err)
	}
	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = ln.Addr().String()
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("transport: bound to %s, an address peers cannot dial: set AdvertiseAddr", addr)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m := &Mux{
		cfg:     cfg,
		logger:  logger.Named("transport"),
		ln:      ln,
		addr:    addr,
		timeout: cfg.HandshakeTimeout,
		layers:  make(map[Kind]*Layer),
		added:   make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
		done:    make(chan struct{}),
	}
	if m.timeout <= 0 {
		m.timeout = DefaultHandshakeTimeout
	}
	if cfg.TLS != nil {
		m.serverTLS = cfg.TLS.Clone()
		if m.serverTLS.ClientCAs != nil && m.serverTLS.ClientAuth == tls.NoClientCert {
			m.serverTLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
		m.clientTLS = cfg.TLS.Clone()
	}
	if cfg.Faults != nil {
		cfg.Faults.register(cfg.NodeID, addr, ln.Addr().String())
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

func (c Config) validate() error {
	var errs []error
	if c.BindAddr == "" {
		errs = append(errs, errors.New("transport: BindAddr must be set"))
	}
	if c.AdvertiseAddr != "" {
		if _, port, err := net.SplitHostPort(c.AdvertiseAddr); err != nil || port == "0" || port == "" {
			errs = append(errs, fmt.Errorf("transport: AdvertiseAddr %q is not a dialable host:port", c.AdvertiseAddr))
		}
	}
	if len(c.NodeID) > MaxNodeIDLen {
		errs = append(errs, fmt.Errorf("transport: NodeID is %d bytes, longer than %d", len(c.NodeID), MaxNodeIDLen))
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
		errs = append(errs, errors.New("transport: TLS config has no certificate for accepting connections"))
	}
	return errors.Join(errs...)
}

// Addr returns the advertised host:port: the address peers dial.
func (m *Mux) Addr() string { return m.addr }

// Layer returns the layer of the given kind, creating it on first use. The
// same kind always yields the same *Layer. An incoming connection of a kind
// that has no layer yet waits for one until its handshake timeout, then is
// refused; so a node may create its layers one by one after Listen.
func (m *Mux) Layer(kind Kind) *Layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.layers[kind]; ok {
		return l
	}
	l := &Layer{mux: m, kind: kind, conns: make(chan net.Conn), done: make(chan struct{})}
	if m.closed {
		close(l.done)
		l.closeOnce.Do(func() {})
	}
	m.layers[kind] = l
	close(m.added)
	m.added = make(chan struct{})
	return l
}

// waitLayer returns the layer of kind, waiting for it until deadline; nil
// when it does not appear in time or the Mux closes.
func (m *Mux) waitLayer(kind Kind, deadline time.Time) *Layer {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		m.mu.Lock()
		l, added := m.layers[kind], m.added
		m.mu.Unlock()
		if l != nil {
			return l
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-added:
		case <-timer.C:
			return nil
		case <-m.done:
			return nil
		}
	}
}

// Close stops accepting, closes every layer (their Accept returns
// net.ErrClosed) and every connection still in its handshake, and waits
// for the Mux's goroutines. Connections already handed to a layer's Accept
// or returned by Dial belong to their caller and stay open. Close is
// idempotent.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		close(m.done)
		layers := make([]*Layer, 0, len(m.layers))
		for _, l := range m.layers {
			layers = append(layers, l)
		}
		for c := range m.pending {
			c.Close()
		}
		m.mu.Unlock()
		m.closeErr = m.ln.Close()
		for _, l := range layers {
			l.Close()
		}
		m.wg.Wait()
		if m.cfg.Faults != nil {
			m.cfg.Faults.unregister(m.cfg.NodeID, m.addr, m.ln.Addr().String())
		}
	})
	return m.closeErr
}

func (m *Mux) isClosed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	backoff := time.Duration(0)
	for {
		raw, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.logger.Error("accept failed", "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-m.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			raw.Close()
			return
		}
		if m.handshakes >= maxPendingHandshakes {
			m.mu.Unlock()
			m.logger.Warn("refusing connection: too many pending handshakes", "remote_addr", raw.RemoteAddr())
			raw.Close()
			continue
		}
		m.pending[raw] = struct{}{}
		m.handshakes++
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handshake(raw)
	}
}

// handshake runs the TLS handshake (if any) and reads the header of one
// incoming connection under a deadline, then hands it to its layer. It runs
// in its own goroutine so a slow or malicious peer never stalls the accept
// loop.
func (m *Mux) handshake(raw net.Conn) {
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		m.handshakes--
		m.mu.Unlock()
	}()
	deadline := time.Now().Add(m.timeout)
	c, err := m.readHandshake(raw, deadline)
	m.mu.Lock()
	delete(m.pending, raw)
	closed := m.closed
	m.mu.Unlock()
	if err != nil || closed {
		if err != nil && !closed {
			m.logger.Debug("rejected incoming connection", "remote_addr", raw.RemoteAddr(), "error", err)
		}
		raw.Close()
		return
	}
	l := m.waitLayer(c.kind, deadline)
	if l == nil {
		if !m.isClosed() {
			m.logger.Debug("rejected incoming connection: no layer for its kind", "remote_addr", raw.RemoteAddr(), "kind", c.kind, "peer", c.peerID)
		}
		c.Conn.Close()
		return
	}
	if f := m.cfg.Faults; f != nil {
		c.faults = f
		if !f.track(c, false) {
			c.Conn.Close()
			return
		}
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-m.done:
		c.Close()
	}
}

func (m *Mux) readHandshake(raw net.Conn, deadline time.Time) (*Conn, error) {
	if err := raw.SetDeadline(deadline); err != nil {
		return nil, err
	}
	conn := raw
	if m.serverTLS != nil {
		tc := tls.Server(raw, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	kind, id, err := readHeader(conn)
	if err != nil {
		return nil, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &Conn{Conn: conn, kind: kind, peerID: id, local: m.cfg.NodeID, remote: id, done: make(chan struct{})}, nil
}

// header encodes the connection header: version byte, kind byte, uvarint
// length of the node id, node id.
func header(kind Kind, nodeID string) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(nodeID))
	b = append(b, headerVersion, byte(kind))
	b = binary.AppendUvarint(b, uint64(len(nodeID)))
	return append(b, nodeID...)
}

// readHeader reads exactly the header bytes, never more: what follows
// belongs to the layer's protocol.
func readHeader(r io.Reader) (Kind, string, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, "", fmt.Errorf("read header: %w", err)
	}
	if b[0] != headerVersion {
		return 0, "", fmt.Errorf("bad header: first byte %#x, want %#x", b[0], headerVersion)
	}
	if b[1] == 0 {
		return 0, "", errors.New("bad header: kind 0")
	}
	n, err := binary.ReadUvarint(byteReader{r})
	if err != nil {
		return 0, "", fmt.Errorf("read header: node id length: %w", err)
	}
	if n > MaxNodeIDLen {
		return 0, "", fmt.Errorf("bad header: node id of %d bytes, longer than %d", n, MaxNodeIDLen)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		return 0, "", fmt.Errorf("read header: node id: %w", err)
	}
	return Kind(b[1]), string(id), nil
}

type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

// Layer is the slice of a Mux for one Kind: a net.Listener for incoming
// connections of that kind, and a dialer that marks outgoing connections
// with it. The cluster package adapts it to raft.StreamLayer in a few lines.
type Layer struct {
	mux       *Mux
	kind      Kind
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

var _ net.Listener = (*Layer)(nil)

// Kind returns the layer's kind.
func (l *Layer) Kind() Kind { return l.kind }

// Accept waits for the next incoming connection of the layer's kind. The
// connection is a *Conn; PeerID reports the id its dialer declared. After
// Close (of the layer or its Mux) it returns net.ErrClosed.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close stops the layer: Accept returns net.ErrClosed and incoming
// connections of its kind are refused. It leaves the Mux and other layers
// running and is idempotent.
func (l *Layer) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr returns the Mux's advertised address.
func (l *Layer) Addr() net.Addr { return addr(l.mux.addr) }

// Dial connects to the Mux at address, with the TLS of the Mux's Config,
// and writes the header for the layer's kind. timeout bounds the whole
// dial, handshakes included; zero means no bound. It implements the Dial of
// raft.StreamLayer.
func (l *Layer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return l.DialContext(ctx, address)
}

// DialContext is Dial bounded by ctx instead of a timeout. When fault
// injection cuts the link from this node to the node at address, it fails at
// once with an error matching ErrLinkCut.
func (l *Layer) DialContext(ctx context.Context, address string) (net.Conn, error) {
	m := l.mux
	if m.isClosed() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: addr(address), Err: net.ErrClosed}
	}
	f := m.cfg.Faults
	var remote string
	if f != nil {
		remote = f.nodeAt(address)
		if f.refuse(m.cfg.NodeID, remote) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: addr(address), Err: ErrLinkCut}
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	conn := raw
	if m.clientTLS != nil {
		cfg := m.clientTLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(address)
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: addr(address), Err: fmt.Errorf("tls handshake: %w", err)}
		}
		conn = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetWriteDeadline(time.Unix(1, 0)) })
	_, err = conn.Write(header(l.kind, m.cfg.NodeID))
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: addr(address), Err: fmt.Errorf("write header: %w", err)}
	}
	raw.SetWriteDeadline(time.Time{})
	c := &Conn{Conn: conn, kind: l.kind, local: m.cfg.NodeID, remote: remote, done: make(chan struct{})}
	if f != nil {
		c.faults = f
		if !f.track(c, true) {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: addr(address), Err: ErrLinkCut}
		}
	}
	return c, nil
}

type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

// Conn is a connection accepted from or dialed through a Layer. It passes
// reads and writes through, applying fault injection to writes when the Mux
// has Faults.
type Conn struct {
	net.Conn
	kind   Kind
	peerID string

	// Fault injection: the ids of this end and the other end, and the
	// Faults that decides about their link. faults is nil without it.
	local, remote string
	faults        *Faults
	closeOnce     sync.Once
	done          chan struct{} // closed by Close; ends injected delays
	blackHoled    bool          // guarded by faults.mu
}

// PeerID returns the node id the dialer declared in the header of an
// accepted connection, and "" for a dialed connection. The id is asserted by
// the peer; with mutual TLS, ConnectionState gives the verified certificate.
func (c *Conn) PeerID() string { return c.peerID }

// Kind returns the connection's kind.
func (c *Conn) Kind() Kind { return c.kind }

// ConnectionState returns the TLS state of the connection, and false when
// it is plaintext.
func (c *Conn) ConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Write writes p, unless fault injection black-holes it (it then reports
// success and nothing is sent), drops the connection (it is closed and the
// write fails with an error matching ErrDropped) or delays it.
func (c *Conn) Write(p []byte) (int, error) {
	if c.faults == nil {
		return c.Conn.Write(p)
	}
	act, delay := c.faults.onWrite(c)
	switch act {
	case actBlackHole:
		return len(p), nil
	case actDrop:
		c.Close()
		return 0, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: ErrDropped}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return 0, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed}
		}
	}
	return c.Conn.Write(p)
}

// Close closes the connection. It is safe to call more than once.
func (c *Conn) Close() error {
	var err error
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.done)
		err = c.Conn.Close()
	})
	if !first {
		return &net.OpError{Op: "close", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed}
	}
	if c.faults != nil {
		c.faults.untrack(c)
	}
	return err
}

// PeerID returns the node id declared by the dialer of a connection
// accepted from a Layer, and "" for any other connection.
func PeerID(conn net.Conn) string {
	if c, ok := conn.(*Conn); ok {
		return c.peerID
	}
	return ""
}
