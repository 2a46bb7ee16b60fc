package history

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// FileName is the harness's history file in a run directory. Other
// recording processes (participants) write ParticipantFileName(id) beside
// it; ReadDir merges them all.
const FileName = "history.jsonl"

// ParticipantFileName is the history file of recording process id.
func ParticipantFileName(id string) string { return "history-" + id + ".jsonl" }

// Recorder appends records to a history file, one JSON line each, and
// keeps the history in memory too so that the run can be checked online
// without re-reading the file. It stamps records whose time is zero with
// Now. It is safe for concurrent use.
//
// Write errors do not stop the run: the first one is kept and returned by
// Err and Close, and recording continues in memory.
type Recorder struct {
	mu      sync.Mutex
	w       io.Writer
	closer  io.Closer
	b       builder
	nextID  map[string]int64
	nextSeq map[string]int64
	err     error
	closed  bool
}

// NewRecorder returns a recorder writing to w (nil: memory only).
func NewRecorder(w io.Writer) *Recorder {
	return &Recorder{w: w, nextID: make(map[string]int64), nextSeq: make(map[string]int64)}
}

// Create creates (or truncates) the file at path and returns a recorder
// writing to it; Close closes the file.
func Create(path string) (*Recorder, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	r := NewRecorder(f)
	r.closer = f
	return r, nil
}

// Invocation is an invoked operation waiting for its completion.
type Invocation struct {
	r  *Recorder
	op Op
}

// Op returns the operation as invoked.
func (p *Invocation) Op() Op { return p.op }

// Complete records the completion now and returns the completed operation.
func (p *Invocation) Complete(res Result) Op { return p.CompleteAt(Now(), res) }

// CompleteAt records the completion at time t (a Now reading).
func (p *Invocation) CompleteAt(t int64, res Result) Op {
	if res.Outcome == Pending {
		res.Outcome, res.Code = Ambiguous, CodeError
	}
	c := Completion{Process: p.op.Process, ID: p.op.ID, Complete: t, Outcome: res.Outcome, Code: res.Code, Lease: res.Lease, Error: res.Error}
	p.r.add(Record{Type: TypeComplete, Completion: &c})
	op := p.op
	op.Complete, op.Outcome, op.Code, op.Lease, op.Error = c.Complete, c.Outcome, c.Code, c.Lease, c.Error
	return op
}

// Invoke records that op is being sent now (or at op.Invoke when set) and
// returns the handle to complete it with. It numbers the operation (op.ID)
// when its ID is zero. Call it just before sending the request.
func (r *Recorder) Invoke(op Op) *Invocation {
	r.mu.Lock()
	if op.ID == 0 {
		r.nextID[op.Process]++
		op.ID = r.nextID[op.Process]
	} else if op.ID > r.nextID[op.Process] {
		r.nextID[op.Process] = op.ID
	}
	if op.Invoke == 0 {
		op.Invoke = Now()
	}
	op.Complete, op.Outcome, op.Code, op.Lease, op.Error = 0, Pending, "", nil, ""
	r.addLocked(Record{Type: TypeInvoke, Op: &op})
	r.mu.Unlock()
	return &Invocation{r: r, op: op}
}

// Run records the run's header. Record it first.
func (r *Recorder) Run(info RunInfo) {
	if info.Start == 0 {
		info.Start = Now()
	}
	r.add(Record{Type: TypeRun, Run: &info})
}

// Nemesis records a nemesis step starting or stopping.
func (r *Recorder) Nemesis(e NemesisEvent) {
	if e.Time == 0 {
		e.Time = Now()
	}
	r.add(Record{Type: TypeNemesis, Nemesis: &e})
}

// Participant records a participant event, numbering it (Seq) when its
// Seq is zero.
func (r *Recorder) Participant(e ParticipantEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Seq == 0 {
		r.nextSeq[e.Participant]++
		e.Seq = r.nextSeq[e.Participant]
	}
	if e.Time == 0 {
		e.Time = Now()
	}
	r.addLocked(Record{Type: TypeParticipant, Participant: &e})
}

// Write records a write to the fenced register.
func (r *Recorder) Write(w FencedWrite) {
	if w.Time == 0 {
		w.Time = Now()
	}
	r.add(Record{Type: TypeWrite, Write: &w})
}

// Status records a node status sample.
func (r *Recorder) Status(s NodeStatus) {
	if s.Time == 0 {
		s.Time = Now()
	}
	r.add(Record{Type: TypeStatus, Status: &s})
}

// Final records a node's final state.
func (r *Recorder) Final(f NodeFinal) {
	if f.Time == 0 {
		f.Time = Now()
	}
	r.add(Record{Type: TypeFinal, Final: &f})
}

// End records the end of the run at time t (0: now).
func (r *Recorder) End(t int64) {
	if t == 0 {
		t = Now()
	}
	r.add(Record{Type: TypeEnd, End: &End{Time: t}})
}

// History returns a sorted snapshot of everything recorded so far.
func (r *Recorder) History() *History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.history()
}

// Err returns the first error writing or assembling the history.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close closes the file of a recorder made by Create and returns the first
// error the recorder met. Records added after Close are kept in memory
// only. Close is idempotent.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		if r.closer != nil {
			if err := r.closer.Close(); err != nil && r.err == nil {
				r.err = fmt.Errorf("history: close: %w", err)
			}
		}
	}
	return r.err
}

func (r *Recorder) add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(rec)
}

func (r *Recorder) addLocked(rec Record) {
	if err := r.b.add(rec); err != nil {
		r.setErrLocked(fmt.Errorf("history: %w", err))
		return
	}
	if r.w == nil || r.closed {
		return
	}
	line, err := json.Marshal(rec)
	if err != nil {
		r.setErrLocked(fmt.Errorf("history: encode %s record: %w", rec.Type, err))
		return
	}
	line = append(line, '\n')
	if _, err := r.w.Write(line); err != nil {
		r.setErrLocked(fmt.Errorf("history: write: %w", err))
	}
}

func (r *Recorder) setErrLocked(err error) {
	if r.err == nil {
		r.err = err
	}
}
