package fsm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"testing/iotest"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// populated returns a replica with a bit of everything: several epochs,
// metadata, wall times, a lease past its deadline but not removed, a token
// floor, a release and an expiry.
func populated(t testing.TB) *replica {
	r := newReplica(t)
	r.mustOK(r.apply(fsm.Acquire(fsm.Stamp{Term: 1, Reading: int64(s1), Wall: 1_700_000_000_123_456_789},
		raftlease.AcquireRequest{Name: "svc/leader", Holder: "node-1", TTL: 10 * s1, Metadata: map[string]string{"addr": "10.0.0.1:80", "zone": "eu"}})))
	r.mustOK(r.acquire("short", "node-2", raftlease.MinTTL, s1))
	r.mustOK(r.acquire("gone", "node-3", 5*s1, s1))
	r.mustOK(r.release("gone", "node-3", 3, 2*s1))
	r.mustOK(r.epoch(4, -7*hour))
	r.mustOK(r.apply(fsm.Acquire(r.at(-7*hour+s1), raftlease.AcquireRequest{Name: "migrated", Holder: "node-2", TTL: hour, TokenFloor: 500})))
	r.mustOK(r.renew("svc/leader", "node-1", 1, 20*s1, -7*hour+2*s1))
	r.mustOK(r.acquire("expired", "node-4", raftlease.MinTTL, -7*hour+2*s1))
	r.mustOK(r.acquire("removed", "node-4", raftlease.MinTTL, -7*hour+2*s1))
	r.mustOK(r.expire(-7*hour+3*s1, fsm.ExpireTarget{Name: "removed", Token: 503}))
	r.mustOK(r.tick(-7*hour + 3*s1))
	if r.f.Len() != 4 {
		t.Fatalf("populated state has %d leases, want 4:\n%s", r.f.Len(), dump(r.f))
	}
	return r
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    func(t *testing.T) *replica
	}{
		{"empty", func(t *testing.T) *replica { return &replica{t: t, f: fsm.New()} }},
		{"after one epoch", func(t *testing.T) *replica { return newReplica(t) }},
		{"populated", func(t *testing.T) *replica { return populated(t) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r(t)
			data := snapshotBytes(t, r.f)
			f, err := fsm.Restore(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got, want := dump(f), dump(r.f); got != want {
				t.Fatalf("restored state:\n%s\nwant:\n%s", got, want)
			}
			if f.Hash() != r.f.Hash() || f.Index() != r.f.Index() || f.Clock() != r.f.Clock() || f.LastToken() != r.f.LastToken() {
				t.Fatalf("restored hash/index/clock/last token differ")
			}
			if again := snapshotBytes(t, f); !bytes.Equal(again, data) {
				t.Fatalf("the restored state snapshots to other bytes")
			}
			// Both continue identically.
			for _, c := range []fsm.Command{
				fsm.Acquire(r.at(-7*hour+4*s1), raftlease.AcquireRequest{Name: "expired", Holder: "node-9", TTL: s1}),
				fsm.Renew(r.at(-7*hour+4*s1), raftlease.RenewRequest{Name: "svc/leader", Holder: "node-1", Token: 1}),
				fsm.Tick(r.at(-7*hour + 5*s1)),
			} {
				r.index++
				want := r.f.Apply(r.index, c)
				if got := f.Apply(r.index, c); formatResult(got, "") != formatResult(want, "") {
					t.Fatalf("after restore:\n%s\nwant\n%s", formatResult(got, ""), formatResult(want, ""))
				}
			}
			if f.Hash() != r.f.Hash() {
				t.Fatalf("diverged after restore:\n%s\nwant:\n%s", dump(f), dump(r.f))
			}
		})
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	r := populated(t)
	before := snapshotBytes(t, r.f)
	snap := r.f.Snapshot()
	index := r.f.Index()
	// Change every lease in every way, and add and remove some.
	r.mustOK(r.renew("svc/leader", "node-1", 1, hour, -7*hour+4*s1))
	r.mustOK(r.apply(fsm.Renew(r.at(-7*hour+4*s1), raftlease.RenewRequest{Name: "svc/leader", Holder: "node-1", Token: 1, Metadata: map[string]string{"zone": "us"}})))
	r.mustOK(r.acquire("expired", "node-5", s1, -7*hour+4*s1))
	r.mustOK(r.release("migrated", "node-2", 501, -7*hour+4*s1))
	r.mustOK(r.acquire("new", "node-6", s1, -7*hour+4*s1))
	r.mustOK(r.epoch(9, 0))
	if snap.Index() != index {
		t.Fatalf("snapshot index moved from %d to %d", index, snap.Index())
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), before) {
		t.Fatalf("a snapshot written after its FSM changed shows the changes")
	}
	// Writing twice gives the same bytes.
	buf.Reset()
	if _, err := snap.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), before) {
		t.Fatalf("second WriteTo differs (%v)", err)
	}
}

// TestSnapshotTruncated: a snapshot cut at any byte is refused whole.
func TestSnapshotTruncated(t *testing.T) {
	for name, r := range map[string]*replica{"empty": {t: t, f: fsm.New()}, "populated": populated(t)} {
		data := snapshotBytes(t, r.f)
		for n := range len(data) {
			f, err := fsm.Restore(bytes.NewReader(data[:n]))
			if !errors.Is(err, fsm.ErrBadSnapshot) || f != nil {
				t.Fatalf("%s snapshot cut to %d of %d bytes: Restore = %v, %v; want nil, ErrBadSnapshot", name, n, len(data), f, err)
			}
		}
	}
}

// TestSnapshotCorrupt: any byte changed anywhere is detected.
func TestSnapshotCorrupt(t *testing.T) {
	data := snapshotBytes(t, populated(t).f)
	for i := range data {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			f, err := fsm.Restore(bytes.NewReader(bad))
			if err == nil || f != nil {
				t.Fatalf("byte %d xor %#x: Restore succeeded", i, mask)
			}
			if !errors.Is(err, fsm.ErrBadSnapshot) {
				t.Fatalf("byte %d xor %#x: %v, want ErrBadSnapshot", i, mask, err)
			}
		}
	}
}

func TestSnapshotHeader(t *testing.T) {
	data := snapshotBytes(t, populated(t).f)
	if string(data[:6]) != "RLSNAP" || data[6] != 1 {
		t.Fatalf("header %q, want magic RLSNAP and version 1", data[:7])
	}
	for _, v := range []byte{0, 2, 255} {
		bad := bytes.Clone(data)
		bad[6] = v
		if _, err := fsm.Restore(bytes.NewReader(bad)); !errors.Is(err, fsm.ErrBadSnapshot) || !bytes.Contains([]byte(err.Error()), []byte("version")) {
			t.Errorf("version %d: %v, want ErrBadSnapshot naming the version", v, err)
		}
	}
	if _, err := fsm.Restore(bytes.NewReader(append([]byte("RLSNAQ"), data[6:]...))); !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Errorf("bad magic: %v", err)
	}
	// A command is not a snapshot.
	if _, err := fsm.Restore(bytes.NewReader(fsm.Encode(fsm.Tick(fsm.Stamp{})))); !errors.Is(err, fsm.ErrBadSnapshot) {
		t.Errorf("a command restored: %v", err)
	}
}

// snapshotBuilder writes the documented snapshot format by hand, to check
// that the documentation in snapshot.go is the format, and that Restore
// refuses well-checksummed but inconsistent content.
type snapshotBuilder struct{ b []byte }

func (s *snapshotBuilder) uvarint(v uint64) *snapshotBuilder {
	s.b = binary.AppendUvarint(s.b, v)
	return s
}

func (s *snapshotBuilder) varint(v int64) *snapshotBuilder {
	s.b = binary.AppendVarint(s.b, v)
	return s
}

func (s *snapshotBuilder) str(v string) *snapshotBuilder {
	return s.uvarint(uint64(len(v))).raw(v)
}

func (s *snapshotBuilder) raw(v string) *snapshotBuilder {
	s.b = append(s.b, v...)
	return s
}

// lease appends a lease without metadata.
func (s *snapshotBuilder) lease(name, holder string, token uint64, ttl, deadline int64, rev uint64) *snapshotBuilder {
	return s.str(name).str(holder).uvarint(token).uvarint(uint64(ttl)).uvarint(0).varint(0).varint(deadline).uvarint(rev)
}

func (s *snapshotBuilder) done() []byte {
	return binary.BigEndian.AppendUint32(s.b, crc32.Checksum(s.b, crc32.MakeTable(crc32.Castagnoli)))
}

func header(index, lastToken uint64, leases uint64) *snapshotBuilder {
	s := &snapshotBuilder{}
	s.raw("RLSNAP").raw("\x01").uvarint(index).uvarint(lastToken)
	s.uvarint(2).varint(-5).varint(int64(3 * s1)).varint(int64(4 * s1)) // clock
	return s.uvarint(leases)
}

func TestSnapshotFormatIsDocumented(t *testing.T) {
	data := header(9, 7, 2).
		lease("a", "h1", 3, int64(5*s1), int64(6*s1), 4).
		str("b").str("h2").uvarint(7).uvarint(uint64(10 * s1)).uvarint(1).str("k").str("v").varint(123).varint(int64(12 * s1)).uvarint(8).
		done()
	f, err := fsm.Restore(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Restore of a hand-written snapshot: %v", err)
	}
	if c := f.Clock(); f.Index() != 9 || f.LastToken() != 7 || c != (fsm.ConsensusClock{Term: 2, EpochReading: -5, EpochBase: 3 * s1, Now: 4 * s1}) {
		t.Fatalf("index %d last token %d clock %+v", f.Index(), f.LastToken(), c)
	}
	ls, _ := f.List("", 0)
	got := formatLease(ls[0]) + "\n" + formatLease(ls[1])
	want := "a holder=h1 token=3 ttl=5s deadline=6s remaining=6s rev=4\n" +
		"b holder=h2 token=7 ttl=10s deadline=12s remaining=12s rev=8 md={k=v} acquired_at=123"
	if got != want {
		t.Fatalf("leases:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, f), data) {
		t.Fatalf("re-encoding a hand-written snapshot gives other bytes")
	}

	for name, data := range map[string][]byte{
		"unsorted names":            header(9, 7, 2).lease("b", "h", 1, int64(s1), int64(s1), 1).lease("a", "h", 2, int64(s1), int64(s1), 1).done(),
		"duplicate names":           header(9, 7, 2).lease("a", "h", 1, int64(s1), int64(s1), 1).lease("a", "h", 2, int64(s1), int64(s1), 1).done(),
		"token above the last one":  header(9, 7, 1).lease("a", "h", 8, int64(s1), int64(s1), 1).done(),
		"fewer leases than counted": header(9, 7, 3).lease("a", "h", 1, int64(s1), int64(s1), 1).done(),
		"string longer than limits": header(9, 7, 1).uvarint(1 << 20).done(),
	} {
		if f, err := fsm.Restore(bytes.NewReader(data)); !errors.Is(err, fsm.ErrBadSnapshot) || f != nil {
			t.Errorf("%s: Restore = %v, %v; want ErrBadSnapshot", name, f, err)
		}
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, io.ErrShortWrite
	}
	w.left -= len(p)
	return len(p), nil
}

func TestSnapshotIOErrors(t *testing.T) {
	r := populated(t)
	data := snapshotBytes(t, r.f)
	for _, n := range []int{0, 1, len(data) - 5, len(data) - 1} {
		if _, err := r.f.Snapshot().WriteTo(&failingWriter{left: n}); err == nil {
			t.Errorf("WriteTo a writer failing after %d bytes: no error", n)
		}
	}
	errDisk := errors.New("disk on fire")
	rd := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(errDisk))
	if f, err := fsm.Restore(rd); err == nil || f != nil {
		t.Errorf("Restore from a failing reader: %v, %v", f, err)
	}
}
