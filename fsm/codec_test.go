package fsm_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/fsm"
)

// goldenCommands holds one fixed command per kind. Their encodings are the
// files testdata/golden/<kind>.hex (STYLE rule 7): any change of the log
// format shows up in review as a diff there. Regenerate with -update, and
// only together with a new command version.
func goldenCommands() map[string]fsm.Command {
	st := fsm.Stamp{Term: 7, Reading: 123_456_789_012, Wall: 1_700_000_000_123_456_789}
	acquire := fsm.Acquire(st, raftlease.AcquireRequest{
		Name: "svc/leader", Holder: "node-1", TTL: 10 * s1, TokenFloor: 41,
		Metadata: map[string]string{"zone": "eu-west", "addr": "10.0.0.1:8080"},
	})
	renew := fsm.Renew(fsm.Stamp{Term: 7, Reading: -5, Wall: -1}, raftlease.RenewRequest{
		Name: "svc/leader", Holder: "node-1", Token: 42, TTL: 15 * s1,
		Metadata: map[string]string{"addr": "10.0.0.2:8080"},
	})
	release := fsm.Release(st, raftlease.ReleaseRequest{Name: "svc/leader", Holder: "node-1", Token: 42})
	expire := fsm.Expire(st, []fsm.ExpireTarget{{Name: "a", Token: 1}, {Name: "svc/leader", Token: math.MaxUint64}})
	epoch := fsm.Epoch(fsm.Stamp{Term: 8, Reading: math.MinInt64, Wall: math.MaxInt64})
	tick := fsm.Tick(fsm.Stamp{Term: 8, Reading: 1})
	return map[string]fsm.Command{
		"acquire": acquire,
		"renew":   renew,
		"release": release,
		"expire":  expire,
		"epoch":   epoch,
		"tick":    tick,
		"batch": fsm.Batch(
			acquire,
			fsm.Renew(st, raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1}),                                // keeps metadata
			fsm.Renew(st, raftlease.RenewRequest{Name: "a", Holder: "h", Token: 1, Metadata: map[string]string{}}), // clears it
			renew, release, expire, epoch, tick,
		),
	}
}

// equalCommands compares commands as the codec must preserve them.
func equalCommands(a, b fsm.Command) bool { return reflect.DeepEqual(a, b) }

func TestGolden(t *testing.T) {
	cmds := goldenCommands()
	kinds := []fsm.Kind{fsm.KindAcquire, fsm.KindRenew, fsm.KindRelease, fsm.KindExpire, fsm.KindEpoch, fsm.KindTick, fsm.KindBatch}
	if len(cmds) != len(kinds) {
		t.Fatalf("%d golden commands for %d kinds", len(cmds), len(kinds))
	}
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			c, ok := cmds[kind.String()]
			if !ok || c.Kind != kind {
				t.Fatalf("no golden %s command", kind)
			}
			checkGolden(t, filepath.Join("testdata", "golden", kind.String()+".hex"), fsm.Encode(c))
			data := readGolden(t, filepath.Join("testdata", "golden", kind.String()+".hex"))
			got, err := fsm.Decode(data)
			if err != nil {
				t.Fatalf("Decode(golden): %v", err)
			}
			if !equalCommands(got, c) {
				t.Fatalf("golden file decodes to\n%+v\nwant\n%+v", got, c)
			}
		})
	}
}

// TestGoldenSnapshot pins the snapshot format the same way: a node must
// restore the snapshots an older build wrote.
func TestGoldenSnapshot(t *testing.T) {
	path := filepath.Join("testdata", "golden", "snapshot.hex")
	r := populated(t)
	checkGolden(t, path, snapshotBytes(t, r.f))
	f, err := fsm.Restore(bytes.NewReader(readGolden(t, path)))
	if err != nil {
		t.Fatalf("Restore(golden): %v", err)
	}
	if dump(f) != dump(r.f) {
		t.Fatalf("golden snapshot restores to\n%s\nwant\n%s", dump(f), dump(r.f))
	}
}

// checkGolden compares data with the hex golden file, or rewrites the file
// under -update. The file holds 32 bytes a line so diffs stay readable.
func checkGolden(t *testing.T, path string, data []byte) {
	t.Helper()
	if *update {
		var b strings.Builder
		for len(data) > 0 {
			n := min(32, len(data))
			b.WriteString(hex.EncodeToString(data[:n]) + "\n")
			data = data[n:]
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := readGolden(t, path); !bytes.Equal(data, want) {
		t.Errorf("encoding differs from %s (run go test ./fsm -run Golden -update if the change is intended):\n got %x\nwant %x", path, data, want)
	}
}

func readGolden(t *testing.T, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./fsm -run Golden -update to create it)", err)
	}
	data, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

func TestCodecRoundTrip(t *testing.T) {
	tests := map[string]fsm.Command{
		"zero stamp and empty fields": fsm.Acquire(fsm.Stamp{}, raftlease.AcquireRequest{}),
		"extreme stamp":               fsm.Tick(fsm.Stamp{Term: math.MaxUint64, Reading: math.MinInt64, Wall: math.MinInt64}),
		"extreme numbers": fsm.Acquire(fsm.Stamp{Term: 1, Reading: math.MaxInt64},
			raftlease.AcquireRequest{Name: "n", Holder: "h", TTL: math.MaxInt64, TokenFloor: math.MaxUint64}),
		"renew keeping metadata":   fsm.Renew(fsm.Stamp{Term: 1}, raftlease.RenewRequest{Name: "n", Holder: "h", Token: 9}),
		"renew clearing metadata":  fsm.Renew(fsm.Stamp{Term: 1}, raftlease.RenewRequest{Name: "n", Holder: "h", Token: 9, Metadata: map[string]string{}}),
		"renew setting metadata":   fsm.Renew(fsm.Stamp{Term: 1}, raftlease.RenewRequest{Name: "n", Holder: "h", Token: 9, Metadata: map[string]string{"k": ""}}),
		"long strings":             fsm.Release(fsm.Stamp{}, raftlease.ReleaseRequest{Name: strings.Repeat("n", 1<<16), Holder: strings.Repeat("é", 1<<15), Token: 1}),
		"binary strings":           fsm.Release(fsm.Stamp{}, raftlease.ReleaseRequest{Name: "\x00\xff", Holder: "\n", Token: 1}),
		"expire without targets":   fsm.Expire(fsm.Stamp{Term: 3}, nil),
		"empty batch":              fsm.Batch(),
		"batch of one":             fsm.Batch(fsm.Tick(fsm.Stamp{Term: 2, Reading: 5})),
		"metadata with many keys":  fsm.Acquire(fsm.Stamp{}, raftlease.AcquireRequest{Name: "n", Metadata: manyMetadata(100)}),
		"expire with many targets": fsm.Expire(fsm.Stamp{}, manyTargets(1000)),
	}
	for name, c := range goldenCommands() {
		tests["golden "+name] = c
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			data := fsm.Encode(c)
			got, err := fsm.Decode(data)
			if err != nil {
				t.Fatalf("Decode(Encode(c)): %v", err)
			}
			if !equalCommands(got, c) {
				t.Fatalf("round trip gives\n%+v\nwant\n%+v", got, c)
			}
			for range 5 { // one command, one encoding, whatever the map order
				if again := fsm.Encode(c); !bytes.Equal(again, data) {
					t.Fatalf("Encode is not deterministic")
				}
			}
			prefix := []byte("prefix")
			if app := fsm.AppendEncode(bytes.Clone(prefix), c); !bytes.Equal(app, append(prefix, data...)) {
				t.Fatalf("AppendEncode differs from Encode")
			}
			if fsm.Ignorable(data) {
				t.Fatalf("a current command is marked ignorable")
			}
		})
	}
}

func manyMetadata(n int) map[string]string {
	md := map[string]string{}
	for i := range n {
		md["k"+itoa(uint64(i))] = strings.Repeat("v", i)
	}
	return md
}

func manyTargets(n int) []fsm.ExpireTarget {
	ts := make([]fsm.ExpireTarget, n)
	for i := range ts {
		ts[i] = fsm.ExpireTarget{Name: "n" + itoa(uint64(i)), Token: uint64(i) * 7919}
	}
	return ts
}

// TestCodecMetadataNilAndEmpty: for acquire, no metadata and empty
// metadata are the same thing and decode as nil; for renew they differ
// (keep vs clear), and the difference survives the log.
func TestCodecMetadataNilAndEmpty(t *testing.T) {
	for _, md := range []map[string]string{nil, {}} {
		got, err := fsm.Decode(fsm.Encode(fsm.Acquire(fsm.Stamp{}, raftlease.AcquireRequest{Name: "n", Metadata: md})))
		if err != nil || got.Metadata != nil || got.SetMetadata {
			t.Errorf("acquire with metadata %#v decodes to %#v, set=%v (%v), want nil", md, got.Metadata, got.SetMetadata, err)
		}
	}
	keep, _ := fsm.Decode(fsm.Encode(fsm.Renew(fsm.Stamp{}, raftlease.RenewRequest{Name: "n", Metadata: nil})))
	if keep.SetMetadata || keep.Metadata != nil {
		t.Errorf("renew keeping metadata decodes to set=%v %#v", keep.SetMetadata, keep.Metadata)
	}
	clear, _ := fsm.Decode(fsm.Encode(fsm.Renew(fsm.Stamp{}, raftlease.RenewRequest{Name: "n", Metadata: map[string]string{}})))
	if !clear.SetMetadata || clear.Metadata == nil || len(clear.Metadata) != 0 {
		t.Errorf("renew clearing metadata decodes to set=%v %#v", clear.SetMetadata, clear.Metadata)
	}
	// A hand-built renew setting nil metadata means "clear" as well.
	c := fsm.Command{Kind: fsm.KindRenew, Name: "n", SetMetadata: true}
	if got, _ := fsm.Decode(fsm.Encode(c)); !got.SetMetadata || len(got.Metadata) != 0 {
		t.Errorf("SetMetadata with nil metadata decodes to set=%v %#v", got.SetMetadata, got.Metadata)
	}
}

func TestDecodeErrors(t *testing.T) {
	golden := goldenCommands()
	enc := func(name string) []byte { return fsm.Encode(golden[name]) }
	with := func(data []byte, i int, b byte) []byte {
		data = bytes.Clone(data)
		data[i] = b
		return data
	}
	// hdr is a release's header and stamp, then its fields are appended.
	hdr := func(kind fsm.Kind) []byte { return []byte{byte(kind), 1, 1, 2, 2} }
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	// md encodes an acquire whose metadata holds the given key/value
	// strings in that order.
	md := func(kv ...string) []byte {
		b := binary.AppendUvarint(binary.AppendUvarint(str(str(hdr(fsm.KindAcquire), "n"), "h"), uint64(s1)), 0)
		b = binary.AppendUvarint(b, uint64(len(kv)/2))
		for _, x := range kv {
			b = str(b, x)
		}
		return b
	}
	if _, err := fsm.Decode(md("a", "v", "b", "w")); err != nil {
		t.Fatalf("the hand-built acquire does not decode: %v", err)
	}
	nested := fsm.Encode(fsm.Batch(fsm.Tick(fsm.Stamp{}), fsm.Batch(fsm.Tick(fsm.Stamp{}))))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"nil", nil, fsm.ErrMalformed},
		{"one byte", []byte{byte(fsm.KindTick)}, fsm.ErrMalformed},
		{"kind 0", []byte{0, 1, 0, 0, 0}, fsm.ErrUnknownCommand},
		{"kind 8", []byte{8, 1, 0, 0, 0}, fsm.ErrUnknownCommand},
		{"kind 0x7f", []byte{0x7f, 1}, fsm.ErrUnknownCommand},
		{"unknown ignorable kind", []byte{0x81, 1, 0, 0, 0}, fsm.ErrUnknownCommand},
		{"a known kind with the ignorable bit", with(enc("tick"), 0, 0x80|byte(fsm.KindTick)), fsm.ErrUnknownCommand},
		{"acquire version 0", with(enc("acquire"), 1, 0), fsm.ErrUnknownVersion},
		{"acquire version 2", with(enc("acquire"), 1, 2), fsm.ErrUnknownVersion},
		{"renew version 2", with(enc("renew"), 1, 2), fsm.ErrUnknownVersion},
		{"release version 255", with(enc("release"), 1, 255), fsm.ErrUnknownVersion},
		{"expire version 2", with(enc("expire"), 1, 2), fsm.ErrUnknownVersion},
		{"epoch version 2", with(enc("epoch"), 1, 2), fsm.ErrUnknownVersion},
		{"tick version 2", with(enc("tick"), 1, 2), fsm.ErrUnknownVersion},
		{"batch version 2", with(enc("batch"), 1, 2), fsm.ErrUnknownVersion},
		{"nested batch", nested, fsm.ErrMalformed},
		{"batch entry of unknown kind", []byte{7, 1, 0, 0, 0, 1, 5, 9, 1, 0, 0, 0}, fsm.ErrUnknownCommand},
		{"batch entry of unknown version", []byte{7, 1, 0, 0, 0, 1, 5, 6, 2, 0, 0, 0}, fsm.ErrUnknownVersion},
		{"batch entry overruns", []byte{7, 1, 0, 0, 0, 1, 9, 6, 1, 0, 0, 0}, fsm.ErrMalformed},
		{"batch entry with trailing bytes", []byte{7, 1, 0, 0, 0, 1, 6, 6, 1, 0, 0, 0, 0}, fsm.ErrMalformed},
		{"batch count beyond the data", []byte{7, 1, 0, 0, 0, 100}, fsm.ErrMalformed},
		{"empty batch entry", []byte{7, 1, 0, 0, 0, 1, 0}, fsm.ErrMalformed},
		{"renew metadata flag 2", append(binary.AppendUvarint(str(str(hdr(fsm.KindRenew), "n"), "h"), 1), 0, 2, 0), fsm.ErrMalformed},
		{"metadata keys unsorted", md("b", "v", "a", "v"), fsm.ErrMalformed},
		{"metadata keys repeated", md("a", "v", "a", "w"), fsm.ErrMalformed},
		{"metadata shorter than counted", md("a", "v")[:10], fsm.ErrMalformed},
		{"string beyond the data", str(hdr(fsm.KindRelease), "n")[:6], fsm.ErrMalformed},
		{"string longer than the limit", binary.AppendUvarint(hdr(fsm.KindRelease), 1<<16+1), fsm.ErrMalformed},
		{"duration above the int64 range", append(binary.AppendUvarint(str(str(hdr(fsm.KindAcquire), "n"), "h"), math.MaxInt64+1), 0, 0), fsm.ErrMalformed},
		{"varint overflow", append([]byte{byte(fsm.KindTick), 1}, bytes.Repeat([]byte{0xff}, 11)...), fsm.ErrMalformed},
		{"expire count beyond the data", binary.AppendUvarint(hdr(fsm.KindExpire), 5), fsm.ErrMalformed},
		{"expire count above the limit", append(binary.AppendUvarint(hdr(fsm.KindExpire), 1<<16+1), make([]byte, 1<<17)...), fsm.ErrMalformed},
	}
	for name, c := range golden {
		tests = append(tests, struct {
			name string
			data []byte
			want error
		}{name + " with a trailing byte", append(fsm.Encode(c), 0), fsm.ErrMalformed})
	}
	sentinels := []error{fsm.ErrMalformed, fsm.ErrUnknownCommand, fsm.ErrUnknownVersion}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := fsm.Decode(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%x) = %+v, %v; want %v", tt.data, c, err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error %v also matches %v", err, s)
				}
			}
			if !reflect.DeepEqual(c, fsm.Command{}) {
				t.Errorf("a failed Decode returned %+v", c)
			}
			// ApplyBytes reports the same error and changes nothing, not
			// even the index.
			f := newReplica(t).f
			before := f.Hash()
			if _, err := f.ApplyBytes(100, tt.data); !errors.Is(err, tt.want) {
				t.Errorf("ApplyBytes: %v, want %v", err, tt.want)
			}
			if f.Hash() != before {
				t.Errorf("ApplyBytes of an undecodable command changed the state")
			}
		})
	}
}

// TestDecodeTruncated: every proper prefix of every golden command fails
// with ErrMalformed.
func TestDecodeTruncated(t *testing.T) {
	for name, c := range goldenCommands() {
		data := fsm.Encode(c)
		for n := range len(data) {
			if got, err := fsm.Decode(data[:n]); !errors.Is(err, fsm.ErrMalformed) {
				t.Fatalf("%s cut to %d of %d bytes: %+v, %v; want ErrMalformed", name, n, len(data), got, err)
			}
		}
	}
}

func TestIgnorable(t *testing.T) {
	tests := []struct {
		data []byte
		want bool
	}{
		{nil, false},
		{[]byte{}, false},
		{[]byte{0x80}, true},
		{[]byte{0x81, 1, 2, 3}, true},
		{[]byte{0xff}, true},
		{[]byte{0x7f}, false},
		{[]byte{0}, false},
	}
	for _, tt := range tests {
		if got := fsm.Ignorable(tt.data); got != tt.want {
			t.Errorf("Ignorable(%x) = %v, want %v", tt.data, got, tt.want)
		}
	}
	// An ignorable command a replica does not know still fails to decode; the
	// caller skips it because Ignorable says it may.
	data := []byte{0x90, 1, 0, 0, 0, 0xde, 0xad}
	if _, err := fsm.Decode(data); !errors.Is(err, fsm.ErrUnknownCommand) || !fsm.Ignorable(data) {
		t.Errorf("unknown ignorable kind: Decode err %v, Ignorable %v", err, fsm.Ignorable(data))
	}
}

func TestKindString(t *testing.T) {
	want := map[fsm.Kind]string{
		fsm.KindAcquire: "acquire", fsm.KindRenew: "renew", fsm.KindRelease: "release", fsm.KindExpire: "expire",
		fsm.KindEpoch: "epoch", fsm.KindTick: "tick", fsm.KindBatch: "batch", 0: "unknown", 8: "unknown", 0x81: "unknown",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}
