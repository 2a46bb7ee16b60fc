package transport_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease/transport"
)

func TestMuxRoutesByKindAndReportsPeerID(t *testing.T) {
	a := listen(t, transport.Config{NodeID: "a"})
	b := listen(t, transport.Config{NodeID: "b"})
	for _, kind := range []transport.Kind{transport.KindRaft, transport.KindForward} {
		b.Layer(kind) // both layers exist before any dial
	}
	for _, kind := range []transport.Kind{transport.KindForward, transport.KindRaft} {
		t.Run(kind.String(), func(t *testing.T) {
			out, err := a.Layer(kind).Dial(b.Addr(), 2*time.Second)
			require.NoError(t, err)
			defer out.Close()
			_, err = out.Write([]byte(kind.String()))
			require.NoError(t, err)

			in, err := b.Layer(kind).Accept()
			require.NoError(t, err)
			defer in.Close()
			assert.Equal(t, "a", transport.PeerID(in))
			assert.Equal(t, "", transport.PeerID(out), "a dialed conn has no declared peer")
			assert.Equal(t, kind, in.(*transport.Conn).Kind())
			got := make([]byte, len(kind.String()))
			_, err = io.ReadFull(in, got)
			require.NoError(t, err)
			assert.Equal(t, kind.String(), string(got), "payload reached the layer of its kind, header stripped")

			// And back.
			_, err = in.Write([]byte("ok"))
			require.NoError(t, err)
			_, err = io.ReadFull(out, got[:2])
			require.NoError(t, err)
			assert.Equal(t, "ok", string(got[:2]))
		})
	}
	assert.Equal(t, b.Addr(), b.Layer(transport.KindRaft).Addr().String())
	assert.Same(t, b.Layer(transport.KindRaft), b.Layer(transport.KindRaft))
}

func TestMuxRejectsGarbageWithoutStallingAccept(t *testing.T) {
	// A long handshake timeout: only the per-connection handshake goroutines
	// keep the loop free, not the timeout.
	b := listen(t, transport.Config{NodeID: "b", HandshakeTimeout: time.Minute})
	a := listen(t, transport.Config{NodeID: "a"})
	raft := b.Layer(transport.KindRaft)

	silent, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer silent.Close()
	halfHeader, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer halfHeader.Close()
	_, err = halfHeader.Write([]byte{0xB1})
	require.NoError(t, err)

	for name, garbage := range map[string][]byte{
		"http":         []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"kind zero":    {0xB1, 0, 1, 'x'},
		"long node id": {0xB1, 1, 0xff, 0xff, 0x03},
		"bad version":  {0xB2, 1, 0},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.Addr())
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write(garbage)
			require.NoError(t, err)
			assert.True(t, readClosed(t, c, 10*time.Second), "garbage connection must be closed")
		})
	}

	// With two connections stuck in their handshake, a good one still gets
	// through at once.
	out, err := a.Layer(transport.KindRaft).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := raft.Accept()
	require.NoError(t, err)
	defer in.Close()
	assert.Equal(t, "a", transport.PeerID(in))
}

func TestMuxHandshakeTimeoutClosesSilentConn(t *testing.T) {
	b := listen(t, transport.Config{NodeID: "b", HandshakeTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	defer c.Close()
	assert.True(t, readClosed(t, c, 10*time.Second))
}

func TestMuxRefusesKindWithoutLayer(t *testing.T) {
	a := listen(t, transport.Config{NodeID: "a"})
	b := listen(t, transport.Config{NodeID: "b", HandshakeTimeout: 50 * time.Millisecond})
	out, err := a.Layer(7).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err, "the dialer cannot know before the header is read")
	defer out.Close()
	assert.True(t, readClosed(t, out, 10*time.Second))
}

func TestMuxConnWaitsForItsLayer(t *testing.T) {
	a := listen(t, transport.Config{NodeID: "a"})
	b := listen(t, transport.Config{NodeID: "b", HandshakeTimeout: time.Minute})
	out, err := a.Layer(transport.KindForward).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	defer out.Close()
	// b creates its layers after Listen, one by one, as cluster does.
	b.Layer(transport.KindRaft)
	in, err := b.Layer(transport.KindForward).Accept()
	require.NoError(t, err)
	defer in.Close()
	assert.Equal(t, "a", transport.PeerID(in))
}

func TestLayerAndMuxClose(t *testing.T) {
	a := listen(t, transport.Config{NodeID: "a"})
	b := listen(t, transport.Config{NodeID: "b"})
	fwd := b.Layer(transport.KindForward)
	require.NoError(t, fwd.Close())
	require.NoError(t, fwd.Close(), "idempotent")
	_, err := fwd.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)

	// A closed layer refuses its kind; other layers keep working.
	out, err := a.Layer(transport.KindForward).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	assert.True(t, readClosed(t, out, 10*time.Second))
	out.Close()
	raft := b.Layer(transport.KindRaft)
	out, err = a.Layer(transport.KindRaft).Dial(b.Addr(), 2*time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := raft.Accept()
	require.NoError(t, err)
	in.Close()

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "idempotent")
	_, err = raft.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = b.Layer(9).Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "a layer made after Close is closed")
	_, err = b.Layer(transport.KindRaft).Dial(a.Addr(), time.Second)
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = a.Layer(transport.KindRaft).Dial(b.Addr(), time.Second)
	assert.Error(t, err, "nobody listens any more")
}

func TestListenValidates(t *testing.T) {
	for name, cfg := range map[string]transport.Config{
		"no bind addr":        {NodeID: "a"},
		"unspecified no adv":  {BindAddr: "0.0.0.0:0", NodeID: "a"},
		"advertise port zero": {BindAddr: "127.0.0.1:0", AdvertiseAddr: "10.0.0.1:0"},
		"long node id":        {BindAddr: "127.0.0.1:0", NodeID: strings.Repeat("x", transport.MaxNodeIDLen+1)},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := transport.Listen(cfg)
			if err == nil {
				m.Close()
			}
			assert.Error(t, err)
		})
	}
	m := listen(t, transport.Config{BindAddr: "0.0.0.0:0", AdvertiseAddr: "node-a.example:7000", NodeID: "a"})
	assert.Equal(t, "node-a.example:7000", m.Addr())
	assert.Equal(t, "node-a.example:7000", m.Layer(transport.KindRaft).Addr().String())
}
