package fenced

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/raftlease/raftlease/jepsen/history"
)

// WriteRequest is the body of POST /write.
type WriteRequest struct {
	Writer string `json:"writer"`
	Token  uint64 `json:"token"`
	Fenced bool   `json:"fenced"`
	Seq    int64  `json:"seq"`
}

// WriteResponse is the answer of POST /write.
type WriteResponse struct {
	Accepted bool `json:"accepted"`
	// Index is the write's place in the register's order.
	Index int64 `json:"index"`
	// Highest is the highest fenced token accepted, after this write.
	Highest uint64 `json:"highest"`
}

// Sink receives every write the register decides, in order. A
// *history.Recorder is one.
type Sink interface {
	Write(history.FencedWrite)
}

// Register is the fenced register. The zero value is not usable; call
// NewRegister. It is an http.Handler serving POST /write.
type Register struct {
	mu      sync.Mutex
	sink    Sink
	clock   func() int64
	index   int64
	highest uint64
}

// NewRegister returns a register recording into sink (nil: record
// nothing), stamping writes with history.Now.
func NewRegister(sink Sink) *Register {
	return &Register{sink: sink, clock: history.Now}
}

// Write decides one write: a fenced write is accepted when its token is
// at least the highest fenced token accepted so far; an unfenced write is
// always accepted and does not move the highest token. The decision is
// recorded before Write returns, under the same lock, so recorded order is
// decision order.
func (r *Register) Write(req WriteRequest) (WriteResponse, error) {
	if req.Writer == "" {
		return WriteResponse{}, fmt.Errorf("fenced: writer must be set")
	}
	if req.Fenced && req.Token == 0 {
		return WriteResponse{}, fmt.Errorf("fenced: a fenced write needs a token (at least 1)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	w := history.FencedWrite{
		Index: r.index, Writer: req.Writer, Token: req.Token, Fenced: req.Fenced, Seq: req.Seq,
		Highest: r.highest, Time: r.clock(),
	}
	switch {
	case !req.Fenced:
		w.Accepted = true
	case req.Token >= r.highest:
		w.Accepted = true
		r.highest = req.Token
	}
	if r.sink != nil {
		r.sink.Write(w)
	}
	return WriteResponse{Accepted: w.Accepted, Index: w.Index, Highest: r.highest}, nil
}

// Highest returns the highest fenced token accepted so far.
func (r *Register) Highest() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.highest
}

const maxBody = 4 << 10

// ServeHTTP serves POST /write.
func (r *Register) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/write" {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	var body WriteRequest
	dec := json.NewDecoder(io.LimitReader(req.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "fenced: bad request body: "+strings.TrimSpace(err.Error()), http.StatusBadRequest)
		return
	}
	resp, err := r.Write(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}
