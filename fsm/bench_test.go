package fsm_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

var benchMetadata = map[string]string{"addr": "10.0.0.1:8080", "zone": "eu-west-1a"}

func benchNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "svc/lease-" + itoa(uint64(i))
	}
	return names
}

// BenchmarkApplyAcquire acquires names whose previous lease has expired, so
// each acquisition issues a token and reports the vacancy too.
func BenchmarkApplyAcquire(b *testing.B) {
	names := benchNames(4096)
	f := fsm.New()
	f.Apply(1, fsm.Epoch(fsm.Stamp{Term: 1}))
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		f.Apply(i+1, fsm.Acquire(fsm.Stamp{Term: 1, Reading: int64(i) * int64(time.Second)},
			raftlease.AcquireRequest{Name: names[i%4096], Holder: "node-1", TTL: time.Second, Metadata: benchMetadata}))
	}
}

func BenchmarkApplyRenew(b *testing.B) {
	f := fsm.New()
	f.Apply(1, fsm.Epoch(fsm.Stamp{Term: 1}))
	f.Apply(2, fsm.Acquire(fsm.Stamp{Term: 1}, raftlease.AcquireRequest{Name: "svc/leader", Holder: "node-1", TTL: 10 * time.Second, Metadata: benchMetadata}))
	b.ReportAllocs()
	i := uint64(2)
	for b.Loop() {
		i++
		res := f.Apply(i, fsm.Renew(fsm.Stamp{Term: 1, Reading: int64(i)}, raftlease.RenewRequest{Name: "svc/leader", Holder: "node-1", Token: 1}))
		if res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkApplyBatch64Renews is one group-committed entry renewing 64
// leases.
func BenchmarkApplyBatch64Renews(b *testing.B) {
	names := benchNames(64)
	f := fsm.New()
	f.Apply(1, fsm.Epoch(fsm.Stamp{Term: 1}))
	for i, name := range names {
		f.Apply(uint64(i+2), fsm.Acquire(fsm.Stamp{Term: 1}, raftlease.AcquireRequest{Name: name, Holder: "node-1", TTL: 10 * time.Second, Metadata: benchMetadata}))
	}
	cmds := make([]fsm.Command, len(names))
	b.ReportAllocs()
	index := uint64(len(names) + 1)
	for b.Loop() {
		index++
		st := fsm.Stamp{Term: 1, Reading: int64(index)}
		for i, name := range names {
			cmds[i] = fsm.Renew(st, raftlease.RenewRequest{Name: name, Holder: "node-1", Token: uint64(i + 1)})
		}
		res := f.Apply(index, fsm.Batch(cmds...))
		if res.Results[63].Err != nil {
			b.Fatal(res.Results[63].Err)
		}
	}
}

// BenchmarkApplyBytesBatch64Renews adds decoding, as a replica applying
// the log does.
func BenchmarkApplyBytesBatch64Renews(b *testing.B) {
	names := benchNames(64)
	f := fsm.New()
	f.Apply(1, fsm.Epoch(fsm.Stamp{Term: 1}))
	cmds := make([]fsm.Command, len(names))
	for i, name := range names {
		f.Apply(uint64(i+2), fsm.Acquire(fsm.Stamp{Term: 1}, raftlease.AcquireRequest{Name: name, Holder: "node-1", TTL: 10 * time.Second}))
		cmds[i] = fsm.Renew(fsm.Stamp{Term: 1, Reading: 1}, raftlease.RenewRequest{Name: name, Holder: "node-1", Token: uint64(i + 1)})
	}
	data := fsm.Encode(fsm.Batch(cmds...))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	index := uint64(len(names) + 1)
	for b.Loop() {
		index++
		if _, err := f.ApplyBytes(index, data); err != nil {
			b.Fatal(err)
		}
	}
}

// withLeases returns an FSM holding n leases with metadata.
func withLeases(n int) *fsm.FSM {
	f := fsm.New()
	f.Apply(1, fsm.Epoch(fsm.Stamp{Term: 1}))
	for i, name := range benchNames(n) {
		f.Apply(uint64(i+2), fsm.Acquire(fsm.Stamp{Term: 1, Reading: int64(i), Wall: 1_700_000_000_000_000_000},
			raftlease.AcquireRequest{Name: name, Holder: "node-" + itoa(uint64(i%5)), TTL: time.Hour, Metadata: benchMetadata}))
	}
	return f
}

func BenchmarkSnapshotWriteTo10k(b *testing.B) {
	f := withLeases(10_000)
	n, _ := f.Snapshot().WriteTo(io.Discard)
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Snapshot().WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore10k(b *testing.B) {
	var buf bytes.Buffer
	if _, err := withLeases(10_000).Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsm.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
