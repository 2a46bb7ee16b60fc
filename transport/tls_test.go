package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// testCA is a self-signed CA that issues node certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// nodeTLS returns a node's TLS config: a certificate for 127.0.0.1 usable
// as server and client, trusting the CA both ways.
func (ca *testCA) nodeTLS(t *testing.T, id string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
	}
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "raftlease test CA")
	a := listen(t, transport.Config{NodeID: "a", TLS: ca.nodeTLS(t, "a")})
	b := listen(t, transport.Config{NodeID: "b", TLS: ca.nodeTLS(t, "b")})
	raft := b.Layer(transport.KindRaft)

	t.Run("peers with certificates connect", func(t *testing.T) {
		out, err := a.Layer(transport.KindRaft).Dial(b.Addr(), 5*time.Second)
		require.NoError(t, err)
		defer out.Close()
		_, err = out.Write([]byte("x"))
		require.NoError(t, err)
		in, err := raft.Accept()
		require.NoError(t, err)
		defer in.Close()
		assert.Equal(t, "a", transport.PeerID(in))
		st, ok := in.(*transport.Conn).ConnectionState()
		require.True(t, ok)
		require.NotEmpty(t, st.PeerCertificates, "the server verified a client certificate")
		assert.Equal(t, "a", st.PeerCertificates[0].Subject.CommonName)
		var got [1]byte
		_, err = in.Read(got[:])
		require.NoError(t, err)
		assert.Equal(t, byte('x'), got[0])
	})

	t.Run("RPC over mutual TLS", func(t *testing.T) {
		na := newNode(t, "na", nil, ca.nodeTLS(t, "na"), nil)
		nb := newNode(t, "nb", nil, ca.nodeTLS(t, "nb"), nil)
		require.NoError(t, call(na, nb, 5*time.Second))
	})

	refused := func(t *testing.T, cfg *tls.Config) {
		t.Helper()
		c, err := tls.Dial("tcp", b.Addr(), cfg)
		if err == nil {
			// TLS 1.3: the client finishes first; the refusal arrives as an
			// alert on its first read.
			defer c.Close()
			_, err = c.Write([]byte{0xB1, byte(transport.KindRaft), 1, 'z'})
			if err == nil {
				assert.True(t, readClosed(t, c, 10*time.Second))
			}
		}
	}
	t.Run("client without certificate is refused", func(t *testing.T) {
		refused(t, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	})
	t.Run("client with a certificate of another CA is refused", func(t *testing.T) {
		other := newCA(t, "other CA").nodeTLS(t, "mallory")
		other.RootCAs = ca.pool
		refused(t, other)
	})
	t.Run("plaintext client is refused", func(t *testing.T) {
		c, err := net.Dial("tcp", b.Addr())
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte{0xB1, byte(transport.KindRaft), 1, 'z', 'h', 'e', 'l', 'l', 'o'})
		require.NoError(t, err)
		assert.True(t, readClosed(t, c, 10*time.Second))
	})
	t.Run("server of another CA is refused by the dialer", func(t *testing.T) {
		stranger := listen(t, transport.Config{NodeID: "s", TLS: newCA(t, "stranger CA").nodeTLS(t, "s")})
		_, err := a.Layer(transport.KindRaft).Dial(stranger.Addr(), 5*time.Second)
		assert.Error(t, err)
		var na = newNode(t, "na2", nil, ca.nodeTLS(t, "na2"), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = na.cli.Call(ctx, stranger.Addr(), "echo", nil)
		assert.ErrorIs(t, err, raftlease.ErrUnavailable)
		assert.Equal(t, raftlease.OutcomeNotApplied, raftlease.OutcomeOf(err))
	})

	// None of the refused connections reached the layer: the next accepted
	// one is the good one.
	out, err := a.Layer(transport.KindRaft).Dial(b.Addr(), 5*time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := raft.Accept()
	require.NoError(t, err)
	defer in.Close()
	assert.Equal(t, "a", transport.PeerID(in))
}
