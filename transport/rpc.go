package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// MaxFrameSize is the largest frame (request or response, after its 4-byte
// length prefix) the forwarding RPC sends or accepts. A peer announcing a
// larger frame is a protocol error: the connection is closed.
const MaxFrameSize = 4 << 20

const (
	rpcVersion           byte = 1
	statusOK             byte = 0
	statusError          byte = 1
	maxMethodLen              = 256
	maxCodeLen                = 256
	responseWriteTimeout      = 10 * time.Second
	maxTimeoutMs              = 1 << 40 // about 35 years; keeps the Duration from overflowing
)

// errFrameTooLarge is the cause of refusing a frame over MaxFrameSize.
var errFrameTooLarge = errors.New("transport: frame larger than MaxFrameSize")

// writeFrame writes a 4-byte big-endian length and the payload in one Write,
// so fault injection acts on whole frames.
func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxFrameSize {
		return errFrameTooLarge
	}
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > MaxFrameSize {
		return nil, fmt.Errorf("%w: peer announced %d bytes", errFrameTooLarge, size)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// Request payload: version byte, uvarint timeout in milliseconds (0: none),
// uvarint method length, method, body (the rest).
func encodeRequest(timeout time.Duration, method string, body []byte) []byte {
	ms := uint64(0)
	if timeout > 0 {
		ms = uint64((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(method)+len(body))
	b = append(b, rpcVersion)
	b = binary.AppendUvarint(b, ms)
	b = binary.AppendUvarint(b, uint64(len(method)))
	b = append(b, method...)
	return append(b, body...)
}

func decodeRequest(p []byte) (timeout time.Duration, method string, body []byte, err error) {
	if len(p) == 0 || p[0] != rpcVersion {
		return 0, "", nil, errors.New("bad request: unknown version")
	}
	p = p[1:]
	ms, n := binary.Uvarint(p)
	if n <= 0 || ms > maxTimeoutMs {
		return 0, "", nil, errors.New("bad request: timeout")
	}
	p = p[n:]
	s, p, err := readString(p, maxMethodLen)
	if err != nil {
		return 0, "", nil, fmt.Errorf("bad request: method: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, s, p, nil
}

// Response payload: status byte; for statusOK the body (the rest); for
// statusError uvarint-prefixed code, uvarint-prefixed message and the
// detail JSON (the rest, possibly empty).
func encodeResponse(body []byte, herr error) []byte {
	if herr == nil {
		return append([]byte{statusOK}, body...)
	}
	code, _ := ErrorCode(herr)
	msg := herr.Error()
	detail := marshalDetail(DetailOf(herr))
	if len(msg) > MaxFrameSize/2 {
		msg = msg[:MaxFrameSize/2]
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(code)+len(msg)+len(detail))
	b = append(b, statusError)
	b = binary.AppendUvarint(b, uint64(len(code)))
	b = append(b, code...)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	return append(b, detail...)
}

func decodeResponse(p []byte) ([]byte, error, error) {
	if len(p) == 0 {
		return nil, nil, errors.New("bad response: empty")
	}
	switch p[0] {
	case statusOK:
		return p[1:], nil, nil
	case statusError:
		code, rest, err := readString(p[1:], maxCodeLen)
		if err != nil {
			return nil, nil, fmt.Errorf("bad response: code: %w", err)
		}
		msg, rest, err := readString(rest, MaxFrameSize)
		if err != nil {
			return nil, nil, fmt.Errorf("bad response: message: %w", err)
		}
		return nil, ErrorFromCode(code, msg, rest), nil
	}
	return nil, nil, fmt.Errorf("bad response: status %d", p[0])
}

func readString(p []byte, max int) (string, []byte, error) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l > uint64(max) || l > uint64(len(p)-n) {
		return "", nil, errors.New("bad length")
	}
	p = p[n:]
	return string(p[:l]), p[l:], nil
}

// Handler serves one forwarded request. ctx ends when the caller's
// deadline (carried in the request) passes or the Server closes. An error
// travels back as its code, message and detail (see ErrorCode) and the
// caller gets the same root error.
type Handler func(ctx context.Context, method string, body []byte) ([]byte, error)

// Server serves the forwarding RPC on a listener.
type Server struct {
	l      net.Listener
	h      Handler
	logger hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Serve starts serving h on l: one goroutine accepts, and one per
// connection reads requests and answers them in order. The Server owns l
// and closes it on Close. logger may be nil.
func Serve(l net.Listener, h Handler, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{l: l, h: h, logger: logger, ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Close closes the listener and every connection, cancels the contexts of
// running handlers and waits for them and the Server's goroutines. It is
// idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.cancel()
		s.l.Close()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	backoff := time.Duration(0)
	for {
		c, err := s.l.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Error("accept failed", "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	peer := PeerID(c)
	for {
		payload, err := readFrame(c)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logger.Debug("closing connection", "peer", peer, "error", err)
			}
			return
		}
		timeout, method, body, err := decodeRequest(payload)
		if err != nil {
			s.logger.Warn("closing connection", "peer", peer, "error", err)
			return
		}
		resp := encodeResponse(s.call(timeout, method, body, peer))
		if len(resp) > MaxFrameSize {
			s.logger.Error("response too large", "peer", peer, "method", method, "bytes", len(resp))
			resp = encodeResponse(nil, fmt.Errorf("transport: response of %d bytes exceeds the %d-byte frame limit", len(resp), MaxFrameSize))
		}
		c.SetWriteDeadline(time.Now().Add(responseWriteTimeout))
		if err := writeFrame(c, resp); err != nil {
			s.logger.Debug("closing connection", "peer", peer, "error", err)
			return
		}
		c.SetWriteDeadline(time.Time{})
	}
}

// call runs the handler, turning a panic into an internal error so one bad
// request cannot take the node down.
func (s *Server) call(timeout time.Duration, method string, body []byte, peer string) (resp []byte, err error) {
	ctx, cancel := s.ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("handler panicked", "peer", peer, "method", method, "panic", r)
			resp, err = nil, fmt.Errorf("transport: handler for %q panicked: %v", method, r)
		}
	}()
	return s.h(ctx, method, body)
}

// ClientOptions tune a Client.
type ClientOptions struct {
	// MaxIdlePerAddr is how many idle connections the Client keeps per
	// address; zero means 2, negative means none (a connection per call).
	MaxIdlePerAddr int
	// DialTimeout bounds a dial (within the call's ctx); zero means 5 s.
	DialTimeout time.Duration
	// IdleTimeout closes connections idle for longer; zero means 60 s.
	IdleTimeout time.Duration
}

// Client calls Servers through a Layer, keeping a small pool of idle
// connections per address. It is safe for concurrent use; each connection
// carries one call at a time.
type Client struct {
	layer *Layer
	opts  ClientOptions

	mu     sync.Mutex
	idle   map[string][]*idleConn
	active map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// idleConn is a pooled connection. While it idles a watcher goroutine
// reads from it, so a connection the peer closed is noticed and never
// reused: a call on it could not tell whether the peer got the request.
type idleConn struct {
	conn  net.Conn
	since time.Time
	done  chan struct{} // closed when the watcher's read returns
	n     int
	err   error
}

// NewClient returns a Client that dials through layer.
func NewClient(layer *Layer, opts ClientOptions) *Client {
	if opts.MaxIdlePerAddr == 0 {
		opts.MaxIdlePerAddr = 2
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	return &Client{layer: layer, opts: opts, idle: make(map[string][]*idleConn), active: make(map[net.Conn]struct{})}
}

// Call sends one request to the Server at addr and waits for its answer.
//
// Errors returned by the remote handler come back as the same root errors
// (see ErrorFromCode). A transport failure returns a
// *raftlease.UnavailableError (matching ErrUnavailable, and the context
// error when ctx ended) whose Outcome is OutcomeNotApplied when the request
// certainly never reached the handler (ctx already done, dial failed,
// request not fully written) and OutcomeUnknown otherwise. ctx bounds the
// whole call: its deadline is sent along and set on the connection, and
// cancelling it closes the connection. Give ctx a deadline: without one, a
// peer that never answers blocks the call until the Client closes. A body
// over MaxFrameSize fails with ErrInvalidArgument; a closed Client returns
// ErrClosed.
func (c *Client) Call(ctx context.Context, addr, method string, body []byte) ([]byte, error) {
	if len(method) > maxMethodLen {
		return nil, &raftlease.FieldError{Field: "method", Reason: fmt.Sprintf("is %d bytes, longer than %d", len(method), maxMethodLen)}
	}
	var timeout time.Duration // sent along; zero means none
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	req := encodeRequest(timeout, method, body)
	if len(req) > MaxFrameSize {
		return nil, &raftlease.FieldError{Field: "body", Reason: fmt.Sprintf("request of %d bytes exceeds the %d-byte frame limit", len(req), MaxFrameSize)}
	}
	fail := func(outcome raftlease.Outcome, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		} else if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return &raftlease.UnavailableError{Outcome: outcome, Err: fmt.Errorf("transport: %s to %s: %w", method, addr, err)}
	}
	if err := ctx.Err(); err != nil {
		return nil, fail(raftlease.OutcomeNotApplied, errors.New("not sent"))
	}
	conn, err := c.get(ctx, addr)
	if err != nil {
		if errors.Is(err, raftlease.ErrClosed) {
			return nil, err
		}
		return nil, fail(raftlease.OutcomeNotApplied, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := writeFrame(conn, req); err != nil {
		// A frame cut short is never handed to the handler.
		stop()
		c.discard(conn)
		return nil, fail(raftlease.OutcomeNotApplied, err)
	}
	payload, err := readFrame(conn)
	ctxEnded := !stop() // the conn is then closed, or about to be
	if err != nil {
		c.discard(conn)
		return nil, fail(raftlease.OutcomeUnknown, err)
	}
	resp, remoteErr, err := decodeResponse(payload)
	if err != nil {
		c.discard(conn)
		return nil, fail(raftlease.OutcomeUnknown, err)
	}
	if ctxEnded {
		c.discard(conn)
	} else {
		conn.SetDeadline(time.Time{})
		c.put(addr, conn)
	}
	return resp, remoteErr
}

// get returns an idle connection to addr, or dials one.
func (c *Client) get(ctx context.Context, addr string) (net.Conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("transport: client: %w", raftlease.ErrClosed)
		}
		list := c.idle[addr]
		if len(list) == 0 {
			c.mu.Unlock()
			break
		}
		ic := list[len(list)-1]
		c.idle[addr] = list[:len(list)-1]
		if len(c.idle[addr]) == 0 {
			delete(c.idle, addr)
		}
		c.active[ic.conn] = struct{}{}
		c.mu.Unlock()
		// Stop the watcher and see whether the peer closed meanwhile.
		ic.conn.SetReadDeadline(time.Unix(1, 0))
		<-ic.done
		if ic.n == 0 && errors.Is(ic.err, os.ErrDeadlineExceeded) && time.Since(ic.since) < c.opts.IdleTimeout {
			ic.conn.SetReadDeadline(time.Time{})
			return ic.conn, nil
		}
		c.discard(ic.conn)
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	conn, err := c.layer.DialContext(dctx, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return nil, fmt.Errorf("transport: client: %w", raftlease.ErrClosed)
	}
	c.active[conn] = struct{}{}
	return conn, nil
}

// put returns a healthy connection to the pool, or closes it.
func (c *Client) put(addr string, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.active, conn)
	if c.closed || len(c.idle[addr]) >= c.opts.MaxIdlePerAddr {
		conn.Close()
		return
	}
	ic := &idleConn{conn: conn, since: time.Now(), done: make(chan struct{})}
	c.idle[addr] = append(c.idle[addr], ic)
	c.wg.Add(1)
	go c.watch(ic)
}

// watch reads from an idle connection until it is checked out (the read
// times out), the peer closes it or sends something unexpected, or the
// Client closes it.
func (c *Client) watch(ic *idleConn) {
	defer c.wg.Done()
	var b [1]byte
	ic.n, ic.err = ic.conn.Read(b[:])
	close(ic.done)
	if ic.n == 0 && errors.Is(ic.err, os.ErrDeadlineExceeded) {
		return // checked out
	}
	// Broken or closed: remove it from the pool unless get already took it.
	c.mu.Lock()
	for addr, list := range c.idle {
		for i, x := range list {
			if x == ic {
				c.idle[addr] = append(list[:i:i], list[i+1:]...)
				if len(c.idle[addr]) == 0 {
					delete(c.idle, addr)
				}
				c.mu.Unlock()
				ic.conn.Close()
				return
			}
		}
	}
	c.mu.Unlock()
}

// IdleConns returns how many idle connections to addr the Client pools.
func (c *Client) IdleConns(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}

func (c *Client) discard(conn net.Conn) {
	c.mu.Lock()
	delete(c.active, conn)
	c.mu.Unlock()
	conn.Close()
}

// Close closes every connection, idle or in use (calls in flight fail with
// an unavailable error), and waits for the Client's goroutines. Later
// calls return ErrClosed. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, list := range c.idle {
		for _, ic := range list {
			ic.conn.Close()
		}
	}
	c.idle = nil
	for conn := range c.active {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}
