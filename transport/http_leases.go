package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/raftlease/raftlease"
)

// The lease endpoints: acquire, renew, release, get (a blocking query),
// list and events (the blocking query behind watches).

func (h *HTTPHandler) acquire(c *call) error {
	name := c.r.PathValue("name")
	c.lease = name
	var body AcquireJSON
	if err := DecodeJSON(c.r.Body, &body, h.opts.MaxBodyBytes); err != nil {
		return err
	}
	req, err := body.ToRequest(name)
	if err != nil {
		return err
	}
	c.holder = req.Holder
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := c.opContext()
	defer cancel()
	l, err := h.backend.Acquire(ctx, req)
	if err != nil {
		return err
	}
	return replyLease(c, l)
}

func (h *HTTPHandler) renew(c *call) error {
	name := c.r.PathValue("name")
	c.lease = name
	var body RenewJSON
	if err := DecodeJSON(c.r.Body, &body, h.opts.MaxBodyBytes); err != nil {
		return err
	}
	req, err := body.ToRequest(name)
	if err != nil {
		return err
	}
	c.holder, c.token = req.Holder, req.Token
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := c.opContext()
	defer cancel()
	l, err := h.backend.Renew(ctx, req)
	if err != nil {
		return err
	}
	return replyLease(c, l)
}

// ReleasedJSON is the body of a successful release.
type ReleasedJSON struct {
	Released bool `json:"released"`
}

func (h *HTTPHandler) release(c *call) error {
	name := c.r.PathValue("name")
	c.lease = name
	var body ReleaseJSON
	if err := DecodeJSON(c.r.Body, &body, h.opts.MaxBodyBytes); err != nil {
		return err
	}
	req := body.ToRequest(name)
	c.holder, c.token = req.Holder, req.Token
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := c.opContext()
	defer cancel()
	if err := h.backend.Release(ctx, req); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, ReleasedJSON{Released: true})
	return nil
}

func replyLease(c *call, l raftlease.Lease) error {
	if c.token == 0 {
		c.token = l.Token
	}
	c.index = l.Revision
	setIndex(c.w, l.Revision)
	writeJSON(c.w, http.StatusOK, FromLease(l))
	return nil
}

// get answers GET /v1/leases/{name}. With ?index=N (N > 0) it is a
// blocking query: it first waits, up to ?wait=, for a change of the lease
// with a revision above N (a watch from N+1, which replays retained
// changes, so a change made between two queries is never missed), then
// answers the current state. IndexHeader is the lease's revision when
// found, and for 404 a store revision read before the lookup (at least N),
// so that a query from it wakes on the next acquisition.
func (h *HTTPHandler) get(c *call) error {
	name := c.r.PathValue("name")
	if name == "" { // GET /v1/leases/
		return h.list(c)
	}
	c.lease = name
	if err := raftlease.ValidateName(name); err != nil {
		return err
	}
	opts, err := readOptions(c.r)
	if err != nil {
		return err
	}
	index, _, err := uintParam(c.r, "index")
	if err != nil {
		return err
	}
	wait, err := h.waitParam(c.r)
	if err != nil {
		return err
	}
	if index > 0 {
		if err := h.awaitLeaseChange(c.r.Context(), name, index, wait); err != nil {
			return err
		}
	}
	ctx, cancel := c.opContext()
	defer cancel()
	// A local read of the store revision, before the lookup: whatever the
	// lookup did not see has a higher revision.
	floor := index
	if ll, err := h.backend.List(ctx, name, raftlease.ReadOptions{Stale: true}); err == nil {
		floor = max(floor, ll.Revision)
	}
	l, err := h.backend.Get(ctx, name, opts)
	if err != nil {
		if errors.Is(err, raftlease.ErrNotFound) {
			c.index = floor
			setIndex(c.w, floor)
		}
		return err
	}
	c.holder = l.Holder
	return replyLease(c, l)
}

// awaitLeaseChange waits until the backend's watch delivers a change of
// name with a revision above index, the wait passes, or the watch cannot
// tell (compacted, closed): in every case but the end of the request, the
// caller then answers the current state.
func (h *HTTPHandler) awaitLeaseChange(ctx context.Context, name string, index uint64, wait time.Duration) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := h.backend.Watch(wctx, raftlease.WatchRequest{Name: name, FromRevision: index + 1})
	switch {
	case errors.Is(err, raftlease.ErrCompacted):
		return nil // changes may have been missed: answer now
	case err != nil:
		return err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// list answers GET /v1/leases?prefix=.
func (h *HTTPHandler) list(c *call) error {
	prefix := c.r.URL.Query().Get("prefix")
	c.lease = prefix
	if err := raftlease.ValidatePrefix(prefix); err != nil {
		return err
	}
	opts, err := readOptions(c.r)
	if err != nil {
		return err
	}
	ctx, cancel := c.opContext()
	defer cancel()
	ll, err := h.backend.List(ctx, prefix, opts)
	if err != nil {
		return err
	}
	c.index = ll.Revision
	setIndex(c.w, ll.Revision)
	writeJSON(c.w, http.StatusOK, FromLeaseList(ll))
	return nil
}

// events answers GET /v1/events, the blocking query behind watches:
// ?prefix= or ?name= selects the leases; ?index=N asks for the events with
// a revision above N, ?from=F for those at or above F (F >= 1; exclusive
// with index); index 0 or absent means from now: the current revision of
// a List (linearizable unless ?stale). It answers as soon as events are
// available, or with none when ?wait= passes; a compacted index answers
// 410 compacted.
func (h *HTTPHandler) events(c *call) error {
	q := c.r.URL.Query()
	sel := raftlease.WatchRequest{Name: q.Get("name"), Prefix: q.Get("prefix")}
	if err := sel.Validate(); err != nil {
		return err
	}
	c.lease = sel.Name + sel.Prefix
	index, hasIndex, err := uintParam(c.r, "index")
	if err != nil {
		return err
	}
	from, hasFrom, err := uintParam(c.r, "from")
	if err != nil {
		return err
	}
	switch {
	case hasIndex && hasFrom:
		return paramError("from", "index and from are exclusive")
	case hasFrom && from == 0:
		return paramError("from", "must be at least 1")
	}
	wait, err := h.waitParam(c.r)
	if err != nil {
		return err
	}
	opts, err := readOptions(c.r)
	if err != nil {
		return err
	}
	after := index
	switch {
	case hasFrom:
		after = from - 1
	case index == 0:
		prefix := sel.Prefix
		if sel.Name != "" {
			prefix = sel.Name
		}
		ctx, cancel := c.opContext()
		ll, err := h.backend.List(ctx, prefix, opts)
		cancel()
		if err != nil {
			return err
		}
		after = ll.Revision
	}
	ans, err := h.collect(c.r.Context(), sel, after, wait)
	if err != nil {
		return err
	}
	c.index = ans.Index
	setIndex(c.w, ans.Index)
	writeJSON(c.w, http.StatusOK, ans)
	return nil
}

// collect gathers the events sel selects with a revision above after.
//
// It watches every lease from after+1 and filters here, because the
// revisions of the events sel does not select still show how far the
// stream has come: an answer without events can then move the index past
// them, so a quiet selection on a busy store does not fall behind the
// retained history.
//
// It waits up to wait for a first event. Then it keeps taking what
// arrives within gatherQuiet of the previous event (at most gatherMax, and
// maxEventsPerAnswer events, closing at a revision boundary), because the
// events of one revision are published together and must travel in one
// answer: the next query asks for revisions above the last one answered.
// When the wait ends without events it drains the same way, then answers
// none, with the index of the last event seen (or after).
//
// A revision is known complete once a later event (of any lease) has
// followed it. The last revision of an answer rests on the quiet period
// instead: Backend.Watch publishes a revision's events at once, and the
// watch goroutine sends them back to back, so only a goroutine stalled
// for longer than gatherQuiet in the middle of a batch could split one.
// (The Backend interface offers no way to ask the watch how far it got.)
//
// If the watch falls behind the retained history, the answer ends with a
// compacted event. An error is returned only when the watch could not
// start (ErrCompacted: 410), the backend closed it with nothing gathered,
// or ctx ended.
func (h *HTTPHandler) collect(ctx context.Context, sel raftlease.WatchRequest, after uint64, wait time.Duration) (EventsJSON, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := h.backend.Watch(wctx, raftlease.WatchRequest{FromRevision: after + 1})
	if err != nil {
		return EventsJSON{}, err
	}
	out := EventsJSON{Events: []EventJSON{}}
	var (
		seen     = after // revision of the last event taken from the watch
		lastRev  uint64  // revision of the last event in out
		full     bool    // close the answer at the next revision boundary
		draining bool
		capC     <-chan time.Time
	)
	waitTimer := time.NewTimer(wait)
	defer waitTimer.Stop()
	quiet := time.NewTimer(gatherQuiet)
	quiet.Stop()
	defer quiet.Stop()
	var capTimer *time.Timer
	defer func() {
		if capTimer != nil {
			capTimer.Stop()
		}
	}()
	drain := func() {
		if !draining {
			draining = true
			capTimer = time.NewTimer(gatherMax)
			capC = capTimer.C
		}
		quiet.Reset(gatherQuiet)
	}
loop:
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				if err := ctx.Err(); err != nil {
					return EventsJSON{}, err
				}
				if len(out.Events) > 0 {
					break loop
				}
				return EventsJSON{}, &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("%w: the watch ended", raftlease.ErrClosed)}
			}
			if ev.Type == raftlease.EventCompacted {
				out.Events = append(out.Events, FromEvent(ev))
				break loop
			}
			if full && ev.Revision > seen {
				break loop // the previous revision is complete; this one waits for the next query
			}
			seen = ev.Revision
			if sel.Matches(ev.Lease.Name) {
				out.Events = append(out.Events, FromEvent(ev))
				lastRev = ev.Revision
				full = full || len(out.Events) >= maxEventsPerAnswer
			}
			if draining || len(out.Events) > 0 {
				drain()
			}
		case <-waitTimer.C:
			drain()
		case <-quiet.C:
			break loop
		case <-capC:
			full = true
		case <-ctx.Done():
			return EventsJSON{}, ctx.Err()
		}
	}
	out.Index = max(after, seen)
	if lastRev > 0 {
		out.Index = lastRev
	}
	return out, nil
}
