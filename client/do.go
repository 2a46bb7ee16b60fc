package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/transport"
)

// Retry backoff: capped exponential with jitter (each pause is drawn from
// [backoff/2, backoff]).
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
	// maxResponseBytes bounds a JSON answer (a large listing).
	maxResponseBytes = 256 << 20
	// maxErrorBytes bounds an error answer.
	maxErrorBytes = 1 << 20
)

// request is one API call, sent to one endpoint per attempt.
type request struct {
	op     string // for logs
	method string
	path   string // escaped
	query  url.Values
	body   []byte // JSON body, or nil
	// stream, when set, is the body instead (not replayable unless it is
	// an io.Seeker).
	stream io.Reader
	// wait is added to the attempt timeout: the server may hold a
	// blocking query that long.
	wait time.Duration
	// decode receives a 2xx response; nil means JSON into out.
	decode func(*http.Response) error
	out    any
	// noRetry stops after the first attempt that may have reached a
	// server (a streamed body, or a snapshot half written).
	noRetry bool
}

// do runs rq with retries: every retryable failure (raftlease.IsRetryable)
// is tried again on the next endpoint after a backoff, until ctx ends (or
// OperationTimeout passes, when ctx has no deadline). That includes
// failures whose outcome is unknown: every call this client retries is a
// read or idempotent for its caller (acquire, renew and release by the same
// holder; see the package doc for release). When an earlier attempt may
// have applied, the error returned says outcome unknown even if the last
// attempt certainly did not apply.
func (c *Client) do(ctx context.Context, rq *request) error {
	if c.closed() {
		return raftlease.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: client: %s not sent: %w", raftlease.ErrUnavailable, rq.op, err)}
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	backoff := minBackoff
	mayHaveApplied := false
	var start int64
	seeker, _ := rq.stream.(io.Seeker)
	if seeker != nil {
		start, _ = seeker.Seek(0, io.SeekCurrent)
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 && seeker != nil {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				break
			}
		}
		i := c.preferred()
		err := c.once(ctx, i, rq)
		if err == nil {
			c.prefer(i)
			return nil
		}
		if !raftlease.IsRetryable(err) {
			if answered(err) {
				c.prefer(i)
			}
			return withOutcome(err, mayHaveApplied)
		}
		mayHaveApplied = mayHaveApplied || raftlease.OutcomeOf(err) == raftlease.OutcomeUnknown
		if rq.noRetry || (rq.stream != nil && seeker == nil) || ctx.Err() != nil || c.closed() {
			return withOutcome(err, mayHaveApplied)
		}
		// Try another endpoint next, or the leader when the answer named it.
		c.rotate(i)
		c.followHint(err)
		pause := backoff/2 + rand.N(backoff/2+1)
		c.log.Debug("retrying", "op", rq.op, "endpoint", c.endpoints[i].Host, "attempt", attempt, "pause", pause, "error", err)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return withOutcome(err, mayHaveApplied)
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return withOutcome(&raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: errors.New("client: request body cannot be sent again")}, true)
}

// withOutcome marks err outcome unknown when an earlier attempt may have
// applied.
func withOutcome(err error, mayHaveApplied bool) error {
	if !mayHaveApplied || !raftlease.IsRetryable(err) || raftlease.OutcomeOf(err) == raftlease.OutcomeUnknown {
		return err
	}
	var ue *raftlease.UnavailableError
	if errors.As(err, &ue) && ue == err {
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: ue.Err}
	}
	return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: err}
}

// answered reports whether err came from a server's answer (rather than
// the connection).
func answered(err error) bool {
	var re *transport.RemoteError
	var he *raftlease.HeldError
	var fe *raftlease.FieldError
	return errors.As(err, &re) || errors.As(err, &he) || errors.As(err, &fe)
}

// once sends one attempt of rq to endpoint i.
func (c *Client) once(ctx context.Context, i int, rq *request) error {
	ep := c.endpoints[i]
	timeout := c.opts.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	actx, cancel := context.WithTimeout(ctx, timeout+rq.wait)
	defer cancel()
	// Whether the request's headers were ever written: until they are, no
	// server can have acted on it.
	var wroteHeaders atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteHeaders: func() { wroteHeaders.Store(true) }})

	q := url.Values{}
	for k, v := range rq.query {
		q[k] = v
	}
	// Ask the server to give up a little before we do, so that it can
	// still tell us the outcome.
	if server := timeout - min(timeout/10, 250*time.Millisecond); server >= 10*time.Millisecond {
		q.Set("timeout", server.Round(time.Millisecond).String())
	}
	target := ep.Scheme + "://" + ep.Host + rq.path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	switch {
	case rq.stream != nil:
		body = io.NopCloser(rq.stream) // not a *bytes.Reader: no GetBody, no silent replays
	case rq.body != nil:
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, target, body)
	if err != nil {
		return fmt.Errorf("client: %s: %w", rq.op, err)
	}
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	} else if rq.stream != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Accept", "application/json")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return connError(ctx, rq, ep, err, wroteHeaders.Load())
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(rq, ep, resp)
	}
	if rq.decode != nil {
		return rq.decode(resp)
	}
	if rq.out == nil {
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes))
	if err := dec.Decode(rq.out); err != nil {
		// The server answered 2xx, so the request took effect; only the
		// answer was lost.
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: fmt.Errorf("client: %s: bad answer from %s: %w", rq.op, ep.Host, err)}
	}
	return nil
}

// responseError rebuilds the error of a non-2xx answer: the server's
// ErrorJSON when it sent one (the same root errors as the embedded store),
// otherwise an error by HTTP status (a proxy's 502, say).
func responseError(rq *request, ep *url.URL, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var ej transport.ErrorJSON
	if json.Unmarshal(data, &ej) == nil && ej.Error.Code != "" {
		return ej.Err()
	}
	msg := fmt.Sprintf("client: %s: HTTP %d from %s: %.200q", rq.op, resp.StatusCode, ep.Host, bytes.TrimSpace(data))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &transport.RemoteError{Code: transport.CodeUnauthorized, Message: msg, Err: transport.ErrUnauthorized}
	case http.StatusTooManyRequests:
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: &transport.RemoteError{Code: transport.CodeUnavailable, Message: msg}}
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: &transport.RemoteError{Code: transport.CodeUnavailable, Message: msg}}
	}
	return &transport.RemoteError{Code: transport.CodeInternal, Message: msg}
}

// connError maps a failure to get an answer to a *raftlease.UnavailableError.
// The outcome is not_applied only when the request certainly never reached
// the server: its headers were never written (the connection could not be
// made, its TLS handshake failed or did not finish in time), or the error
// says so. Anything later (a reset, EOF, a timeout waiting for the answer)
// is unknown.
func connError(ctx context.Context, rq *request, ep *url.URL, err error, sent bool) error {
	outcome := raftlease.OutcomeUnknown
	if !sent || neverSent(err) {
		outcome = raftlease.OutcomeNotApplied
	}
	cause := err
	if ctxErr := ctx.Err(); ctxErr != nil {
		cause = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return &raftlease.UnavailableError{Outcome: outcome, Err: fmt.Errorf("%w: client: %s via %s: %w", raftlease.ErrUnavailable, rq.op, ep.Host, cause)}
}

func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var (
		dns   *net.DNSError
		cve   *tls.CertificateVerificationError
		rhe   tls.RecordHeaderError
		alert tls.AlertError
		ua    x509.UnknownAuthorityError
		he    x509.HostnameError
		ci    x509.CertificateInvalidError
	)
	return errors.As(err, &dns) || errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &alert) ||
		errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
