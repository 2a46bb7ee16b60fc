package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"os"
)

// tlsFiles are the TLS flags: PEM files of a certificate, its key and the
// CA that signs every member's (and client's) certificate.
type tlsFiles struct {
	Cert, Key, CA string
	// ServerName, on the client side, overrides the name checked in the
	// server's certificate.
	ServerName string
}

func tlsFlags(fs *flag.FlagSet, t *tlsFiles, certUsage string) {
	fs.StringVar(&t.Cert, "tls-cert", "", "PEM file of "+certUsage)
	fs.StringVar(&t.Key, "tls-key", "", "PEM file of the key of --tls-cert")
	fs.StringVar(&t.CA, "tls-ca", "", "PEM file of the CA that signs the certificates of the nodes (and clients)")
}

func (t tlsFiles) enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// validate checks the combination. A server (the agent) needs all three:
// it presents its certificate and verifies its peers'. A client needs the
// CA (or none of them, for plain HTTP), and a certificate and key together
// when the servers require client certificates.
func (t tlsFiles) validate(server bool) error {
	if !t.enabled() {
		return nil
	}
	var errs []error
	if (t.Cert == "") != (t.Key == "") {
		errs = append(errs, usagef("--tls-cert and --tls-key go together"))
	}
	if server && (t.Cert == "" || t.Key == "" || t.CA == "") {
		errs = append(errs, usagef("--tls-cert, --tls-key and --tls-ca go together: the node presents its certificate and verifies its peers' with the CA"))
	}
	if !server && t.CA == "" {
		errs = append(errs, usagef("--tls-ca is required with TLS: it verifies the servers' certificates"))
	}
	return errors.Join(errs...)
}

func (t tlsFiles) load() (cert *tls.Certificate, pool *x509.CertPool, err error) {
	if t.Cert != "" {
		c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, nil, usagef("--tls-cert/--tls-key: %v", err)
		}
		cert = &c
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, nil, usagef("--tls-ca: %v", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, usagef("--tls-ca %s: no PEM certificate in it", t.CA)
		}
	}
	return cert, pool, nil
}

// nodeTLS returns the configuration for node-to-node traffic (the Raft
// port) and for the HTTP server: this node's certificate, and the CA both
// to verify the servers it dials and to require and verify client
// certificates (mutual TLS). Nil when TLS is off.
func (t tlsFiles) nodeTLS() (raft, http *tls.Config, err error) {
	if !t.enabled() {
		return nil, nil, nil
	}
	cert, pool, err := t.load()
	if err != nil {
		return nil, nil, err
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	return base.Clone(), base.Clone(), nil
}

// clientTLS returns the configuration for talking to a cluster's HTTP API:
// the CA to verify the servers and, when given, a client certificate. Nil
// when TLS is off.
func (t tlsFiles) clientTLS() (*tls.Config, error) {
	if !t.enabled() {
		return nil, nil
	}
	cert, pool, err := t.load()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: t.ServerName}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}
