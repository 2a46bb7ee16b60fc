package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/memstore"
)

func TestNowIsMonotonic(t *testing.T) {
	prev := Now()
	if prev <= 0 {
		t.Fatalf("Now() = %d", prev)
	}
	for range 1000 {
		n := Now()
		if n < prev {
			t.Fatalf("Now went back: %d after %d", n, prev)
		}
		prev = n
	}
}

// record writes one record of every type.
func record(r *Recorder) {
	r.Run(RunInfo{Seed: 42, Family: "partition", GitSHA: "abc", Config: RunConfig{
		Nodes: []string{"n1", "n2", "n3"}, MaxDrift: 0.01, OpTimeoutNs: int64(time.Second), Extra: map[string]string{"k": "v"}}})
	inv := r.Invoke(Op{Process: "c1", Workload: WorkloadRegister, Node: "n1", Kind: Acquire, Name: "x", Holder: "A", TTLNs: int64(time.Hour)})
	inv.Complete(Result{Outcome: OK, Lease: &LeaseResult{Holder: "A", Token: 3, Revision: 7, TTLNs: int64(time.Hour)}})
	inv = r.Invoke(Op{Process: "c2", Workload: WorkloadRegister, Kind: Acquire, Name: "x", Holder: "B"})
	inv.Complete(Result{Outcome: Refused, Code: CodeLeaseHeld, Lease: &LeaseResult{Holder: "A", Token: 3}, Error: "held"})
	r.Invoke(Op{Process: "c2", Workload: WorkloadRegister, Kind: Get, Name: "x", Stale: true}) // never completes
	r.Nemesis(NemesisEvent{Step: 1, Phase: PhaseStart, Kind: "kill-leader", Targets: []string{"n1"}, Detail: "target leader"})
	r.Participant(ParticipantEvent{Participant: "p1", Name: "e", Event: Gained, Token: 4, Reason: "elected"})
	r.Participant(ParticipantEvent{Participant: "p1", Name: "e", Event: Lost, Token: 4})
	r.Write(FencedWrite{Index: 1, Writer: "p1", Token: 4, Fenced: true, Seq: 1, Accepted: true})
	r.Status(NodeStatus{Node: "n1", State: "leader", Term: 2, Leader: "n1", AppliedIndex: 10, CommitIndex: 10})
	r.Nemesis(NemesisEvent{Step: 1, Phase: PhaseStop, Kind: "kill-leader", Targets: []string{"n1"}})
	r.Final(NodeFinal{Node: "n1", AppliedIndex: 12, FSMHash: "deadbeef"})
	r.End(0)
}

func TestRecorderRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	record(r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	online := r.History()
	offline, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(online, offline) {
		t.Fatalf("read back differs:\nonline  %+v\noffline %+v", online, offline)
	}
	if len(offline.Ops) != 3 || !offline.Ops[2].Pending() || offline.Ops[0].Lease.Token != 3 || offline.Ops[1].Code != CodeLeaseHeld {
		t.Fatalf("ops %+v", offline.Ops)
	}
	if offline.Ops[0].ID != 1 || offline.Ops[1].ID != 1 || offline.Ops[2].ID != 2 {
		t.Fatalf("ids are per process: %+v", offline.Ops)
	}
	if offline.Participants[1].Seq != 2 || offline.Run.Seed != 42 || offline.EndTime == 0 || len(offline.Finals) != 1 {
		t.Fatalf("history %+v", offline)
	}
	data, _ := os.ReadFile(path)
	for _, typ := range []string{TypeRun, TypeInvoke, TypeComplete, TypeNemesis, TypeParticipant, TypeWrite, TypeStatus, TypeFinal, TypeEnd} {
		if !bytes.Contains(data, []byte(`{"type":"`+typ+`"`)) {
			t.Errorf("no %s record in the file", typ)
		}
	}
	if n := bytes.Count(data, []byte("\n")); n != 14 {
		t.Errorf("%d lines, want 14", n)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var buf syncBuffer
	r := NewRecorder(&buf)
	const clients, each = 8, 200
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("c%d", c)
			for i := range each {
				inv := r.Invoke(Op{Process: p, Kind: Get, Name: "x"})
				if i%2 == 0 {
					r.Write(FencedWrite{Index: int64(c*each + i + 1), Writer: p, Token: 1, Fenced: true, Accepted: true})
				}
				inv.Complete(Result{Outcome: Refused, Code: CodeNotFound})
			}
		}()
	}
	wg.Wait()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	h, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != clients*each || len(h.Writes) != clients*each/2 {
		t.Fatalf("%d ops, %d writes", len(h.Ops), len(h.Writes))
	}
	for _, op := range h.Ops {
		if op.Pending() || op.Complete < op.Invoke {
			t.Fatalf("bad op %+v", op)
		}
	}
	if !reflect.DeepEqual(h, r.History()) {
		t.Fatal("file and memory differ")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func TestReadTornAndBadLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(&buf)
	r.Invoke(Op{Process: "c1", Kind: Get, Name: "x"}).Complete(Result{Outcome: Refused, Code: CodeNotFound})
	good := buf.String()

	h, err := Read(strings.NewReader(good + `{"type":"invoke","op":{"proc`))
	if err != nil || !h.Truncated || len(h.Ops) != 1 {
		t.Fatalf("torn last line: %v %+v", err, h)
	}
	if _, err := Read(strings.NewReader(`{"type":"invoke","op":{"proc` + "\n" + good)); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad first line: %v", err)
	}
	for _, bad := range []string{
		`{"type":"complete","completion":{"process":"c9","id":1,"complete_ns":5,"outcome":"ok"}}`,
		`{"type":"mystery"}`,
		`{"type":"invoke"}`,
	} {
		if _, err := Read(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := Read(strings.NewReader(good + good)); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate invoke: %v", err)
	}
}

func TestReadDirMergesParticipantFiles(t *testing.T) {
	dir := t.TempDir()
	main, _ := Create(filepath.Join(dir, FileName))
	p1, _ := Create(filepath.Join(dir, ParticipantFileName("p1")))
	main.Run(RunInfo{Seed: 1, Start: 1})
	main.Write(FencedWrite{Index: 1, Writer: "p1", Token: 2, Fenced: true, Accepted: true, Time: 30})
	p1.Invoke(Op{Process: "p1", Kind: Acquire, Name: "e", Holder: "p1", Invoke: 10}).CompleteAt(20, Result{Outcome: OK, Lease: &LeaseResult{Holder: "p1", Token: 2}})
	p1.Participant(ParticipantEvent{Participant: "p1", Name: "e", Event: Gained, Token: 2, Time: 21})
	main.Close()
	p1.Close()
	h, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != 1 || len(h.Participants) != 1 || len(h.Writes) != 1 || h.Run == nil || h.Start() != 1 || h.End() != 30 {
		t.Fatalf("merged %+v", h)
	}
	if _, err := ReadDir(t.TempDir()); err == nil {
		t.Fatal("a directory without history.jsonl read")
	}
}

func TestResultOf(t *testing.T) {
	held := raftlease.Lease{Name: "x", Holder: "A", Token: 3, TTL: time.Hour}
	cases := []struct {
		err     error
		outcome Outcome
		code    string
	}{
		{nil, OK, ""},
		{&raftlease.HeldError{Current: held}, Refused, CodeLeaseHeld},
		{fmt.Errorf("wrapped: %w", raftlease.ErrNotHolder), Refused, CodeNotHolder},
		{raftlease.ErrNotFound, Refused, CodeNotFound},
		{&raftlease.FieldError{Field: "ttl", Reason: "bad"}, Failed, CodeInvalidArgument},
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: raftlease.ErrNoQuorum}, Failed, CodeNotApplied},
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: raftlease.ErrNoQuorum}, Ambiguous, CodeUnknown},
		{&raftlease.NotLeaderError{LeaderID: "n2"}, Ambiguous, CodeUnknown},
		{&raftlease.UnavailableError{Outcome: raftlease.OutcomeUnknown, Err: context.DeadlineExceeded}, Ambiguous, CodeTimeout},
		{context.Canceled, Ambiguous, CodeTimeout},
		{errors.New("read tcp: connection reset by peer"), Ambiguous, CodeError},
	}
	for _, c := range cases {
		r := ResultOf(held, c.err)
		if r.Outcome != c.outcome || r.Code != c.code {
			t.Errorf("%v: %s/%s, want %s/%s", c.err, r.Outcome, r.Code, c.outcome, c.code)
		}
	}
	if r := ResultOf(held, &raftlease.HeldError{Current: held}); r.Lease == nil || r.Lease.Holder != "A" || r.Lease.Token != 3 {
		t.Errorf("lease_held without the current lease: %+v", r)
	}
	if r := ResultOf(raftlease.Lease{}, nil); r.Lease != nil {
		t.Errorf("release result carries a lease: %+v", r)
	}
}

func TestRecordingStore(t *testing.T) {
	ms, err := memstore.New(memstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rec := NewRecorder(nil)
	s := &RecordingStore{Store: ms, Rec: rec, Process: "p1", Workload: WorkloadElector, Node: "n1"}
	ctx := context.Background()
	l, err := s.Acquire(ctx, raftlease.AcquireRequest{Name: "e", Holder: "p1", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(ctx, raftlease.RenewRequest{Name: "e", Holder: "p1", Token: l.Token}); err != nil {
		t.Fatal(err)
	}
	s.Acquire(ctx, raftlease.AcquireRequest{Name: "e", Holder: "p2", TTL: time.Minute})
	s.Release(ctx, raftlease.ReleaseRequest{Name: "e", Holder: "p1", Token: l.Token})
	s.Get(ctx, "e", raftlease.ReadOptions{Stale: true})
	ops := rec.History().Ops
	want := []string{"acquire ok", "renew ok", "acquire refused lease_held", "release ok", "get refused not_found"}
	if len(ops) != len(want) {
		t.Fatalf("ops %+v", ops)
	}
	for i, op := range ops {
		got := string(op.Kind) + " " + string(op.Outcome)
		if op.Code != "" {
			got += " " + op.Code
		}
		if got != want[i] || op.Process != "p1" || op.Workload != WorkloadElector || op.Node != "n1" {
			t.Errorf("op %d: %s (%+v), want %s", i, got, op, want[i])
		}
	}
	if ops[1].Lease.TTLNs != int64(time.Minute) || ops[1].TTL() != time.Minute || !ops[4].Stale || ops[2].Lease.Holder != "p1" {
		t.Errorf("details lost: %+v", ops)
	}
}
