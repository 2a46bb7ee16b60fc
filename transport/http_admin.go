package transport

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/raftlease/raftlease"
)

// The cluster endpoints: status, membership, snapshots, health.

func (h *HTTPHandler) status(c *call) error {
	ctx, cancel := c.opContext()
	defer cancel()
	st, err := h.backend.Status(ctx)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, st)
	return nil
}

func (h *HTTPHandler) addMember(c *call) error {
	var body AddMemberJSON
	if err := DecodeJSON(c.r.Body, &body, h.opts.MaxBodyBytes); err != nil {
		return err
	}
	m := body.ToMember()
	if err := validateMember(m); err != nil {
		return err
	}
	ctx, cancel := c.opContext()
	defer cancel()
	if err := h.backend.AddMember(ctx, m); err != nil {
		return err
	}
	h.log.Info("member added", "member", m.ID, "raft_addr", m.RaftAddr, "http_addr", m.HTTPAddr, "voter", m.Voter)
	writeJSON(c.w, http.StatusOK, m)
	return nil
}

func validateMember(m MemberJSON) error {
	var errs []error
	if err := raftlease.ValidateHolder(m.ID); err != nil {
		errs = append(errs, &raftlease.FieldError{Field: "id", Reason: fieldReason(err)})
	}
	if m.RaftAddr == "" {
		errs = append(errs, &raftlease.FieldError{Field: "raft_addr", Reason: "must not be empty"})
	}
	return errors.Join(errs...)
}

func fieldReason(err error) string {
	var fe *raftlease.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

// RemovedJSON is the body of a successful member removal.
type RemovedJSON struct {
	Removed bool `json:"removed"`
}

func (h *HTTPHandler) removeMember(c *call) error {
	id := c.r.PathValue("id")
	if err := raftlease.ValidateHolder(id); err != nil {
		return &raftlease.FieldError{Field: "id", Reason: fieldReason(err)}
	}
	ctx, cancel := c.opContext()
	defer cancel()
	if err := h.backend.RemoveMember(ctx, id); err != nil {
		return err
	}
	h.log.Info("member removed", "member", id)
	writeJSON(c.w, http.StatusOK, RemovedJSON{Removed: true})
	return nil
}

// snapshotWriter sends the response headers on the first write, so that a
// backend failing before it writes anything still gets a JSON error.
type snapshotWriter struct {
	w     http.ResponseWriter
	wrote bool
	n     int64
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	if !s.wrote {
		s.wrote = true
		s.start()
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *snapshotWriter) start() {
	h := s.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="raftlease.snapshot"`)
	h.Set("Trailer", SnapshotBytesTrailer)
	s.w.WriteHeader(http.StatusOK)
}

// saveSnapshot streams Backend.SaveSnapshot. A failure before the first
// byte is an ordinary JSON error; after it, the connection is cut (and the
// SnapshotBytesTrailer is missing), so no client mistakes a partial
// snapshot for a whole one.
func (h *HTTPHandler) saveSnapshot(c *call) error {
	ctx, cancel := c.opContext()
	defer cancel()
	sw := &snapshotWriter{w: c.w}
	_, err := h.backend.SaveSnapshot(ctx, sw)
	if err != nil {
		if sw.wrote {
			h.log.Error("snapshot failed part way", "bytes", sw.n, "error", err)
			return errAborted
		}
		return err
	}
	if !sw.wrote {
		sw.start()
	}
	c.w.Header().Set(SnapshotBytesTrailer, strconv.FormatInt(sw.n, 10))
	h.log.Info("snapshot saved", "bytes", sw.n)
	return nil
}

func (h *HTTPHandler) restoreSnapshot(c *call) error {
	ctx, cancel := c.opContext()
	defer cancel()
	body := http.MaxBytesReader(c.w, c.r.Body, h.opts.MaxSnapshotBytes)
	report, err := h.backend.RestoreSnapshot(ctx, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &raftlease.FieldError{Field: "body", Reason: "snapshot is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
		}
		return err
	}
	h.log.Info("snapshot restored", "imported", report.Imported, "skipped", len(report.Skipped), "token_floor", report.TokenFloor)
	writeJSON(c.w, http.StatusOK, report)
	return nil
}

// HealthJSON is the body of /healthz and of a ready /readyz.
type HealthJSON struct {
	Status string `json:"status"`
}

// healthz answers 200 while the process serves HTTP at all.
func (h *HTTPHandler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, HealthJSON{Status: "alive"})
}

// readyz answers 200 when Backend.Ready is nil, and 503 with the error
// otherwise, whatever its code.
func (h *HTTPHandler) readyz(w http.ResponseWriter, r *http.Request) {
	timeout, err := durationParam(r, "timeout", readyTimeout)
	if err != nil {
		h.writeError(w, err)
		return
	}
	if timeout == 0 {
		timeout = readyTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := h.backend.Ready(ctx); err != nil {
		body, _ := NewErrorJSON(err)
		if body.Error.Outcome == "" {
			body.Error.Outcome = raftlease.OutcomeOf(err).String()
		}
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, HealthJSON{Status: "ready"})
}
