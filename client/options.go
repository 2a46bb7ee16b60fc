package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
)

// Defaults of Options.
const (
	DefaultRequestTimeout   = 5 * time.Second
	DefaultOperationTimeout = 15 * time.Second
)

// Options configure a Client. Endpoints is the only required field.
type Options struct {
	// Endpoints are the HTTP API addresses of the cluster's nodes, as
	// "host:port" (https when TLS is set, http otherwise) or
	// "http://host:port" / "https://host:port". Any node serves any
	// request; more endpoints mean more to fail over to.
	Endpoints []string
	// Token, when set, is sent on every request as
	// "Authorization: Bearer <token>".
	Token string
	// TLS, when set, secures the connections (and makes bare host:port
	// endpoints https). Set Certificates for mutual TLS. Leave it nil when
	// HTTPClient is set: configure that client's transport instead.
	TLS *tls.Config
	// HTTPClient, when set, sends the requests; its Timeout should be zero
	// (the Client bounds each attempt itself). Nil means a client of our
	// own, whose connections Close releases.
	HTTPClient *http.Client
	// RequestTimeout bounds one attempt of one request (default 5s); a
	// blocking query gets its wait on top. The server is asked to answer
	// a little before it, so that a slow cluster still reports a proper
	// unavailable error with its outcome.
	RequestTimeout time.Duration
	// OperationTimeout bounds all attempts of one call, retries included,
	// when the caller's ctx has no deadline (default 15s). With a deadline,
	// the ctx alone decides.
	OperationTimeout time.Duration
	// Logger receives the client's logs (named "client"); nil discards
	// them.
	Logger hclog.Logger
}

// Validate reports every problem with the options, by field name, as
// *raftlease.FieldError values joined with errors.Join. It never changes
// the options.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &raftlease.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if len(o.Endpoints) == 0 {
		bad("Endpoints", "must list at least one node's HTTP API address")
	}
	seen := map[string]bool{}
	for i, ep := range o.Endpoints {
		u, err := parseEndpoint(ep, o.TLS != nil)
		if err != nil {
			bad(fmt.Sprintf("Endpoints[%d]", i), "%v", err)
			continue
		}
		if seen[u.String()] {
			bad(fmt.Sprintf("Endpoints[%d]", i), "%q is listed twice", ep)
		}
		seen[u.String()] = true
	}
	if strings.IndexFunc(o.Token, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		bad("Token", "must not contain spaces or control characters")
	}
	if o.TLS != nil && o.HTTPClient != nil {
		bad("TLS", "must be nil when HTTPClient is set; configure HTTPClient's transport instead")
	}
	if o.RequestTimeout < 0 {
		bad("RequestTimeout", "%v must not be negative", o.RequestTimeout)
	}
	if o.OperationTimeout < 0 {
		bad("OperationTimeout", "%v must not be negative", o.OperationTimeout)
	}
	return errors.Join(errs...)
}

// parseEndpoint turns "host:port" or "scheme://host:port" into a base URL.
func parseEndpoint(ep string, tlsOn bool) (*url.URL, error) {
	if ep == "" {
		return nil, errors.New("must not be empty")
	}
	if !strings.Contains(ep, "://") {
		scheme := "http"
		if tlsOn {
			scheme = "https"
		}
		ep = scheme + "://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return nil, fmt.Errorf("%q is not host:port or a URL", ep)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", ep)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%q: want only scheme, host and port", ep)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("%q: want host:port", ep)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}
