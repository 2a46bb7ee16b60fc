package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Snapshot format, version 1:
//
//	magic "RLSNAP" (6 bytes), version (1 byte)
//	uvarint index, uvarint last token
//	clock: uvarint term, varint epoch reading, varint epoch base, varint now
//	uvarint lease count, then each lease sorted by name:
//	  name, holder (strings), uvarint token, uvarint ttl, metadata,
//	  varint acquired-at, varint deadline, uvarint revision
//	CRC-32C of everything above (4 bytes, big endian)
//
// Strings and metadata are encoded as in commands.
const (
	snapshotMagic   = "RLSNAP"
	snapshotVersion = 1
)

// ErrBadSnapshot reports a snapshot that is truncated, corrupt or of an
// unknown version.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is an immutable view of the state at one index. Taking it costs a
// copy of the lease pointers; writing it streams.
type Snapshot struct {
	index     uint64
	lastToken uint64
	clock     ConsensusClock
	leases    []*lease // sorted by name; values are immutable
}

// Snapshot captures the current state. The FSM may keep applying commands
// while the snapshot is written elsewhere.
func (f *FSM) Snapshot() *Snapshot {
	ls := slices.Collect(maps.Values(f.leases))
	slices.SortFunc(ls, func(a, b *lease) int { return strings.Compare(a.name, b.name) })
	return &Snapshot{index: f.index, lastToken: f.lastToken, clock: f.clock, leases: ls}
}

// Index returns the index the snapshot was taken at.
func (s *Snapshot) Index() uint64 { return s.index }

// WriteTo streams the snapshot to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 64<<10)
	var b []byte
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, s.index)
	b = binary.AppendUvarint(b, s.lastToken)
	b = binary.AppendUvarint(b, s.clock.Term)
	b = binary.AppendVarint(b, s.clock.EpochReading)
	b = binary.AppendVarint(b, int64(s.clock.EpochBase))
	b = binary.AppendVarint(b, int64(s.clock.Now))
	b = binary.AppendUvarint(b, uint64(len(s.leases)))
	if _, err := bw.Write(b); err != nil {
		return cw.n, err
	}
	for _, l := range s.leases {
		b = b[:0]
		b = appendString(b, l.name)
		b = appendString(b, l.holder)
		b = binary.AppendUvarint(b, l.token)
		b = binary.AppendUvarint(b, durationBits(l.ttl))
		b = appendMetadata(b, l.metadata)
		b = binary.AppendVarint(b, l.acquiredAt)
		b = binary.AppendVarint(b, int64(l.deadline))
		b = binary.AppendUvarint(b, l.revision)
		if _, err := bw.Write(b); err != nil {
			return cw.n, err
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore reads a snapshot written by WriteTo and returns a fresh state
// machine holding it. It checks the checksum before returning, so a
// truncated or corrupt snapshot never yields partial state.
func Restore(r io.Reader) (*FSM, error) {
	crc := crc32.New(castagnoli)
	sr := &snapReader{r: bufio.NewReaderSize(r, 64<<10), crc: crc}
	magic := sr.bytes(len(snapshotMagic))
	if sr.err == nil && string(magic) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, magic)
	}
	if v := sr.byte(); sr.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, v)
	}
	f := New()
	f.index = sr.uvarint()
	f.lastToken = sr.uvarint()
	f.clock.Term = sr.uvarint()
	f.clock.EpochReading = sr.varint()
	f.clock.EpochBase = time.Duration(sr.varint())
	f.clock.Now = time.Duration(sr.varint())
	n := sr.uvarint()
	prev := ""
	for i := uint64(0); i < n && sr.err == nil; i++ {
		l := &lease{}
		l.name = sr.string()
		l.holder = sr.string()
		l.token = sr.uvarint()
		l.ttl = time.Duration(sr.uvarint())
		l.metadata = sr.metadata()
		l.acquiredAt = sr.varint()
		l.deadline = time.Duration(sr.varint())
		l.revision = sr.uvarint()
		if sr.err != nil {
			break
		}
		if i > 0 && l.name <= prev {
			return nil, fmt.Errorf("%w: leases not sorted at %q", ErrBadSnapshot, l.name)
		}
		if l.token > f.lastToken {
			return nil, fmt.Errorf("%w: lease %q token %d above last token %d", ErrBadSnapshot, l.name, l.token, f.lastToken)
		}
		prev = l.name
		f.leases[l.name] = l
	}
	if sr.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, sr.err)
	}
	want := crc.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(sr.r, tail[:]); err != nil {
		return nil, fmt.Errorf("%w: missing checksum: %v", ErrBadSnapshot, err)
	}
	if got := binary.BigEndian.Uint32(tail[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrBadSnapshot, got, want)
	}
	return f, nil
}

// snapReader decodes a snapshot stream, feeding what it reads to the CRC.
type snapReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	err error
}

func (s *snapReader) ReadByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.crc.Write([]byte{b})
	}
	return b, err
}

func (s *snapReader) byte() byte {
	if s.err != nil {
		return 0
	}
	b, err := s.ReadByte()
	s.err = noEOF(err)
	return b
}

func (s *snapReader) bytes(n int) []byte {
	if s.err != nil {
		return nil
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		s.err = noEOF(err)
		return nil
	}
	s.crc.Write(buf)
	return buf
}

func (s *snapReader) uvarint() uint64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(s)
	s.err = noEOF(err)
	return v
}

func (s *snapReader) varint() int64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(s)
	s.err = noEOF(err)
	return v
}

func (s *snapReader) string() string {
	n := s.uvarint()
	if s.err == nil && n > maxStringLen {
		s.err = fmt.Errorf("string of %d bytes", n)
	}
	return string(s.bytes(int(n)))
}

func (s *snapReader) metadata() map[string]string {
	n := s.uvarint()
	if s.err != nil || n == 0 {
		return nil
	}
	if n > maxMetadataKeys {
		s.err = fmt.Errorf("%d metadata keys", n)
		return nil
	}
	md := make(map[string]string, n)
	for i := uint64(0); i < n && s.err == nil; i++ {
		k := s.string()
		md[k] = s.string()
	}
	return md
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Hash returns a checksum of the whole state, equal on two replicas exactly
// when their snapshots are byte-identical. Tests use it to compare replicas.
func (f *FSM) Hash() uint32 {
	crc := crc32.New(castagnoli)
	_, _ = f.Snapshot().WriteTo(crc)
	return crc.Sum32()
}
