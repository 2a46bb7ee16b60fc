package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftlease/raftlease"
)

// The HTTP API. NewHandler serves a Backend as JSON over HTTP; docs/api.md
// describes every endpoint for users, and package client is its Go client.
//
//	POST   /v1/leases/{name}/acquire   AcquireJSON  -> LeaseJSON
//	POST   /v1/leases/{name}/renew     RenewJSON    -> LeaseJSON
//	POST   /v1/leases/{name}/release   ReleaseJSON  -> {"released":true}
//	GET    /v1/leases/{name}           ?index=&wait=&stale= -> LeaseJSON (blocking query)
//	GET    /v1/leases                  ?prefix=&stale=      -> LeaseListJSON
//	GET    /v1/events                  ?prefix=|name=&index=|from=&wait=&stale= -> EventsJSON
//	GET    /v1/status                  -> StatusJSON
//	POST   /v1/members                 AddMemberJSON -> MemberJSON
//	DELETE /v1/members/{id}            -> {"removed":true}
//	GET    /v1/snapshot                -> snapshot bytes
//	POST   /v1/snapshot                snapshot bytes -> RestoreReportJSON
//	GET    /healthz, /readyz, /metrics (never authenticated)
//
// A lease name may contain '/'. Clients should escape it as %2F inside the
// path segment (package client does); unescaped slashes work too, except in
// names the router would clean (with "//", "/./", "/../" or a trailing
// '/'), which must be escaped.
//
// Every /v1/ endpoint accepts ?timeout=<duration>, which bounds the
// backend operation (not the wait of a blocking query) so that the server
// answers with a proper 503 and its outcome before a client gives up.

// Defaults of HandlerOptions.
const (
	DefaultMaxBodyBytes     = 64 << 10
	DefaultMaxSnapshotBytes = 256 << 20
	DefaultMaxWait          = 5 * time.Minute
)

// IndexHeader carries the revision an answer reflects: the lease's revision
// (its last change) for a lease, the store revision for a listing, and the
// index to ask from next for events. Pass it back as ?index= to block until
// something changes after it.
const IndexHeader = "X-Raftlease-Index"

// SnapshotBytesTrailer is the HTTP trailer of GET /v1/snapshot that carries
// the number of snapshot bytes sent. It is absent when the snapshot failed
// part way (the response is then cut short, too).
const SnapshotBytesTrailer = "X-Raftlease-Snapshot-Bytes"

// Timings of the events endpoint, see HTTPHandler.collect.
const (
	// gatherQuiet: once an answer has events, the handler keeps taking
	// events that arrive within this of the previous one, so that a batch
	// (several events of one revision) travels whole.
	gatherQuiet = 5 * time.Millisecond
	// gatherMax bounds the gathering; then the answer closes at the next
	// revision boundary.
	gatherMax = 100 * time.Millisecond
	// maxEventsPerAnswer bounds the events of one answer, at a revision
	// boundary.
	maxEventsPerAnswer = 1024
	// readyTimeout bounds /readyz when the request sets no timeout.
	readyTimeout = 2 * time.Second
	// defaultBlockingWait is the wait of a blocking query without ?wait=
	// (then capped by MaxWait).
	defaultBlockingWait = DefaultMaxWait
)

// HandlerOptions configure NewHandler. The zero value serves without
// authentication and without metrics.
type HandlerOptions struct {
	// AuthTokens, when non-empty, are the bearer tokens accepted on every
	// /v1/ request (Authorization: Bearer <token>); anything else is
	// refused with 401 unauthorized. /healthz, /readyz and /metrics are
	// never authenticated. Empty means authentication is off.
	AuthTokens []string
	// Registry, when set, receives the handler's metrics (see metrics.go).
	// Nil registers none.
	Registry prometheus.Registerer
	// Gatherer is what GET /metrics serves. When nil, /metrics serves
	// Registry if it is also a Gatherer (a *prometheus.Registry is), and
	// answers 404 otherwise: with neither set, there are no metrics.
	Gatherer prometheus.Gatherer
	// Logger receives request logs (named "http"); nil discards them.
	Logger hclog.Logger
	// MaxBodyBytes bounds JSON request bodies (default 64 KiB).
	MaxBodyBytes int64
	// MaxSnapshotBytes bounds the body of POST /v1/snapshot (default
	// 256 MiB).
	MaxSnapshotBytes int64
	// MaxWait caps the wait of blocking queries (default 5m); a longer
	// ?wait= is shortened to it, and an absent one means MaxWait. An
	// http.Server serving the handler needs a WriteTimeout above it.
	MaxWait time.Duration
}

// Validate reports every problem with the options, by field name, as
// *raftlease.FieldError values joined with errors.Join. It never changes
// the options.
func (o HandlerOptions) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &raftlease.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	for i, tok := range o.AuthTokens {
		field := fmt.Sprintf("AuthTokens[%d]", i)
		if tok == "" {
			bad(field, "must not be empty")
			continue
		}
		if strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
			bad(field, "must not contain spaces or control characters")
		}
	}
	if o.MaxBodyBytes < 0 {
		bad("MaxBodyBytes", "%d must not be negative", o.MaxBodyBytes)
	}
	if o.MaxSnapshotBytes < 0 {
		bad("MaxSnapshotBytes", "%d must not be negative", o.MaxSnapshotBytes)
	}
	if o.MaxWait < 0 {
		bad("MaxWait", "%v must not be negative", o.MaxWait)
	}
	return errors.Join(errs...)
}

// HTTPHandler is the HTTP API of one node. It is an http.Handler, safe for
// concurrent use; it starts no goroutine of its own (each request runs in
// the http.Server's goroutine, and a blocking query holds one backend
// watch until it answers).
type HTTPHandler struct {
	backend Backend
	opts    HandlerOptions
	tokens  [][sha256.Size]byte
	log     hclog.Logger
	metrics *metrics
	mux     *http.ServeMux
}

var _ http.Handler = (*HTTPHandler)(nil)

// NewHandler returns the HTTP API handler serving b. It fails when the
// options do not validate or the metrics cannot be registered (for
// example, because another handler registered them on the same Registry).
func NewHandler(b Backend, opts HandlerOptions) (*HTTPHandler, error) {
	var errs []error
	if b == nil {
		errs = append(errs, &raftlease.FieldError{Field: "Backend", Reason: "must not be nil"})
	}
	if err := errors.Join(append(errs, opts.Validate())...); err != nil {
		return nil, fmt.Errorf("transport: handler options: %w", err)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxSnapshotBytes == 0 {
		opts.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	h := &HTTPHandler{backend: b, opts: opts, log: opts.Logger.Named("http"), mux: http.NewServeMux()}
	for _, tok := range opts.AuthTokens {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(tok)))
	}
	m, err := newMetrics(opts.Registry, b, h.log)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	h.routes()
	return h, nil
}

func (h *HTTPHandler) routes() {
	acquire := h.api("acquire", h.acquire)
	renew := h.api("renew", h.renew)
	release := h.api("release", h.release)
	h.mux.Handle("POST /v1/leases/{name}/acquire", acquire)
	h.mux.Handle("POST /v1/leases/{name}/renew", renew)
	h.mux.Handle("POST /v1/leases/{name}/release", release)
	// Names with unescaped slashes span several segments.
	h.mux.HandleFunc("POST /v1/leases/{path...}", func(w http.ResponseWriter, r *http.Request) {
		path := r.PathValue("path")
		i := strings.LastIndexByte(path, '/')
		var next http.Handler
		if i > 0 {
			switch path[i+1:] {
			case "acquire":
				next = acquire
			case "renew":
				next = renew
			case "release":
				next = release
			}
		}
		if next == nil {
			http.NotFound(w, r)
			return
		}
		r.SetPathValue("name", path[:i])
		next.ServeHTTP(w, r)
	})
	h.mux.Handle("GET /v1/leases/{name...}", h.api("get", h.get))
	h.mux.Handle("GET /v1/leases", h.api("list", h.list))
	h.mux.Handle("GET /v1/events", h.api("events", h.events))
	h.mux.Handle("GET /v1/status", h.api("status", h.status))
	h.mux.Handle("POST /v1/members", h.api("add_member", h.addMember))
	h.mux.Handle("DELETE /v1/members/{id}", h.api("remove_member", h.removeMember))
	h.mux.Handle("GET /v1/snapshot", h.api("save_snapshot", h.saveSnapshot))
	h.mux.Handle("POST /v1/snapshot", h.api("restore_snapshot", h.restoreSnapshot))
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	if g := h.gatherer(); g != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
}

func (h *HTTPHandler) gatherer() prometheus.Gatherer {
	if h.opts.Gatherer != nil {
		return h.opts.Gatherer
	}
	if g, ok := h.opts.Registry.(prometheus.Gatherer); ok {
		return g
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// call is one API request on its way through an endpoint.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	timeout time.Duration // from ?timeout=, 0 when absent
	// For the request log: what the request was about.
	lease, holder string
	token         uint64
	index         uint64 // the revision the answer reflects, when known
}

// opContext returns the ctx for a backend operation: the request's,
// bounded by ?timeout= when set.
func (c *call) opContext() (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(c.r.Context(), c.timeout)
	}
	return context.WithCancel(c.r.Context())
}

// errAborted: the endpoint had already sent part of a successful answer
// when it failed; the connection is cut so the client cannot mistake the
// partial answer for a whole one.
var errAborted = errors.New("transport: response aborted")

type endpoint func(c *call) error

// api wraps an endpoint with authentication, the ?timeout= parameter,
// error encoding, metrics and the request log.
func (h *HTTPHandler) api(op string, fn endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{w: w, r: r}
		var err error
		switch {
		case !h.authorized(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="raftlease"`)
			err = ErrUnauthorized
		default:
			c.timeout, err = durationParam(r, "timeout", 0)
			if err == nil {
				err = fn(c)
			}
		}
		if err != nil && err != errAborted {
			drainBody(r)
			h.writeError(w, err)
		}
		code := "ok"
		if err == errAborted {
			code = CodeInternal
		} else if err != nil {
			code, _ = ErrorCode(err)
		}
		elapsed := time.Since(start)
		h.metrics.observe(op, code, elapsed)
		h.logRequest(op, code, c, elapsed, err)
		if err == errAborted {
			panic(http.ErrAbortHandler)
		}
	})
}

func (h *HTTPHandler) logRequest(op, code string, c *call, elapsed time.Duration, err error) {
	args := []any{"op", op, "code", code, "duration", elapsed, "remote", c.r.RemoteAddr}
	if c.lease != "" {
		args = append(args, "lease", c.lease)
	}
	if c.holder != "" {
		args = append(args, "holder", c.holder)
	}
	if c.token != 0 {
		args = append(args, "token", c.token)
	}
	if c.index != 0 {
		args = append(args, "index", c.index)
	}
	if err != nil {
		args = append(args, "error", err)
	}
	switch {
	case code == CodeInternal:
		h.log.Error("request failed", args...)
	case code == CodeUnauthorized:
		h.log.Warn("request refused", args...)
	default:
		h.log.Debug("request", args...)
	}
}

// authorized reports whether r carries one of the accepted bearer tokens
// (always true when authentication is off). Tokens are compared as SHA-256
// digests in constant time, every token every time, so neither the length
// nor the position of a match leaks.
func (h *HTTPHandler) authorized(r *http.Request) bool {
	if len(h.tokens) == 0 {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for _, want := range h.tokens {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return match == 1
}

// maxDrainBytes bounds how much of an unread request body the handler
// reads away before it answers an error.
const maxDrainBytes = 1 << 20

// drainBody reads away (a bounded amount of) what is left of a refused
// request's body, so that a client still sending it — an oversized body,
// say — reads our 400 instead of a connection reset.
func drainBody(r *http.Request) {
	if r.Body != nil {
		_, _ = io.CopyN(io.Discard, r.Body, maxDrainBytes)
	}
}

// writeError sends err as an ErrorJSON with the status of its code. Every
// 503 body carries "outcome" (DetailOf sets it for every 503 code).
func (h *HTTPHandler) writeError(w http.ResponseWriter, err error) {
	body, status := NewErrorJSON(err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Our wire types always encode; keep the promise of a JSON body.
		data, _ = json.Marshal(ErrorJSON{Error: ErrorBody{Code: CodeInternal, Message: "transport: encode response: " + err.Error()}})
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func setIndex(w http.ResponseWriter, index uint64) {
	w.Header().Set(IndexHeader, strconv.FormatUint(index, 10))
}

// --- Query parameters ---

func paramError(name, format string, args ...any) error {
	return &raftlease.FieldError{Field: name, Reason: fmt.Sprintf(format, args...)}
}

// uintParam reads a non-negative integer parameter; ok is false when the
// parameter is absent.
func uintParam(r *http.Request, name string) (v uint64, ok bool, err error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return 0, false, nil
	}
	s := q.Get(name)
	v, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, paramError(name, "%q is not a non-negative integer", s)
	}
	return v, true, nil
}

// durationParam reads a non-negative Go duration parameter, def when
// absent.
func durationParam(r *http.Request, name string, def time.Duration) (time.Duration, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, paramError(name, `%q is not a duration such as "30s"`, s)
	}
	if d < 0 {
		return 0, paramError(name, "%v must not be negative", d)
	}
	return d, nil
}

// boolParam reads a boolean parameter; a bare ?stale counts as true.
func boolParam(r *http.Request, name string) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return false, nil
	}
	s := q.Get(name)
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, paramError(name, "%q is not true or false", s)
	}
	return b, nil
}

// waitParam reads ?wait=, capped by MaxWait; absent means MaxWait.
func (h *HTTPHandler) waitParam(r *http.Request) (time.Duration, error) {
	d, err := durationParam(r, "wait", min(defaultBlockingWait, h.opts.MaxWait))
	if err != nil {
		return 0, err
	}
	return min(d, h.opts.MaxWait), nil
}

func readOptions(r *http.Request) (raftlease.ReadOptions, error) {
	stale, err := boolParam(r, "stale")
	return raftlease.ReadOptions{Stale: stale}, err
}
