package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Encoding, version 1. Every command starts with two bytes:
//
//	kind (1 byte; bit 0x80 marks a type that unknown replicas may skip)
//	version of that kind's layout (1 byte)
//
// followed by the stamp (uvarint term, varint reading, varint wall) and the
// kind's fields. Strings are a uvarint length and bytes; metadata is a
// uvarint count and key/value strings sorted by key, so one command has one
// encoding. A batch holds a uvarint count and each command as a uvarint
// length and its bytes. Trailing bytes are an error.
const commandVersion = 1

// Decoding limits. They bound allocations for hostile input; the state
// machine then validates content against the raftlease limits.
const (
	maxStringLen    = 1 << 16
	maxBatchLen     = 1 << 16
	maxTargets      = 1 << 16
	maxMetadataKeys = 1 << 10
)

// Errors from Decode. A committed command that fails to decode is fatal for
// a replica: it must stop rather than diverge.
var (
	ErrUnknownCommand = errors.New("fsm: unknown command kind")
	ErrUnknownVersion = errors.New("fsm: unknown command version")
	ErrMalformed      = errors.New("fsm: malformed command")
)

// Ignorable reports whether an encoded command belongs to a type marked
// ignorable, which replicas that do not know it may skip.
func Ignorable(data []byte) bool {
	return len(data) > 0 && Kind(data[0])&kindIgnorable != 0
}

// Encode returns the binary encoding of c.
func Encode(c Command) []byte {
	return appendCommand(make([]byte, 0, 64), c)
}

// AppendEncode appends the binary encoding of c to dst.
func AppendEncode(dst []byte, c Command) []byte { return appendCommand(dst, c) }

func appendCommand(b []byte, c Command) []byte {
	b = append(b, byte(c.Kind), commandVersion)
	b = binary.AppendUvarint(b, c.Stamp.Term)
	b = binary.AppendVarint(b, c.Stamp.Reading)
	b = binary.AppendVarint(b, c.Stamp.Wall)
	switch c.Kind {
	case KindAcquire:
		b = appendString(b, c.Name)
		b = appendString(b, c.Holder)
		b = binary.AppendUvarint(b, durationBits(c.TTL))
		b = binary.AppendUvarint(b, c.TokenFloor)
		b = appendMetadata(b, c.Metadata)
	case KindRenew:
		b = appendString(b, c.Name)
		b = appendString(b, c.Holder)
		b = binary.AppendUvarint(b, c.Token)
		b = binary.AppendUvarint(b, durationBits(c.TTL))
		if c.SetMetadata {
			b = append(b, 1)
			b = appendMetadata(b, c.Metadata)
		} else {
			b = append(b, 0)
		}
	case KindRelease:
		b = appendString(b, c.Name)
		b = appendString(b, c.Holder)
		b = binary.AppendUvarint(b, c.Token)
	case KindExpire:
		b = binary.AppendUvarint(b, uint64(len(c.Targets)))
		for _, t := range c.Targets {
			b = appendString(b, t.Name)
			b = binary.AppendUvarint(b, t.Token)
		}
	case KindEpoch, KindTick:
	case KindBatch:
		b = binary.AppendUvarint(b, uint64(len(c.Commands)))
		for _, sub := range c.Commands {
			start := len(b)
			b = appendCommand(b, sub)
			enc := slices.Clone(b[start:])
			b = binary.AppendUvarint(b[:start], uint64(len(enc)))
			b = append(b, enc...)
		}
	}
	return b
}

// durationBits encodes a duration; negative durations (never valid) encode
// as the largest duration, which the state machine refuses. (Not as zero: a
// renew's zero TTL means "keep the TTL", which would turn an invalid renew
// into a valid one on the way through the log.)
func durationBits(d time.Duration) uint64 {
	if d < 0 {
		return math.MaxInt64
	}
	return uint64(d)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMetadata(b []byte, md map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(md)))
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, md[k])
	}
	return b
}

// Decode parses one encoded command. It returns an error matching
// ErrUnknownCommand, ErrUnknownVersion or ErrMalformed when it cannot.
func Decode(data []byte) (Command, error) {
	d := decoder{buf: data}
	c := d.command(0)
	if d.err == nil && d.off != len(d.buf) {
		d.fail("%d trailing bytes", len(d.buf)-d.off)
	}
	if d.err != nil {
		return Command{}, d.err
	}
	return c, nil
}

type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s (at byte %d)", ErrMalformed, fmt.Sprintf(format, args...), d.off)
	}
}

func (d *decoder) command(depth int) Command {
	var c Command
	if len(d.buf)-d.off < 2 {
		d.fail("short header")
		return c
	}
	c.Kind = Kind(d.buf[d.off])
	version := d.buf[d.off+1]
	d.off += 2
	if _, ok := kindNames[c.Kind]; !ok {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d", ErrUnknownCommand, c.Kind)
		}
		return c
	}
	if version != commandVersion {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %s version %d", ErrUnknownVersion, c.Kind, version)
		}
		return c
	}
	c.Stamp.Term = d.uvarint()
	c.Stamp.Reading = d.varint()
	c.Stamp.Wall = d.varint()
	switch c.Kind {
	case KindAcquire:
		c.Name = d.string()
		c.Holder = d.string()
		c.TTL = d.duration()
		c.TokenFloor = d.uvarint()
		c.Metadata = d.metadata()
	case KindRenew:
		c.Name = d.string()
		c.Holder = d.string()
		c.Token = d.uvarint()
		c.TTL = d.duration()
		switch d.byte() {
		case 0:
		case 1:
			c.SetMetadata = true
			c.Metadata = d.metadata()
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
		default:
			d.fail("bad metadata flag")
		}
	case KindRelease:
		c.Name = d.string()
		c.Holder = d.string()
		c.Token = d.uvarint()
	case KindExpire:
		n := d.count(maxTargets)
		if n > 0 {
			c.Targets = make([]ExpireTarget, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			c.Targets = append(c.Targets, ExpireTarget{Name: d.string(), Token: d.uvarint()})
		}
	case KindEpoch, KindTick:
	case KindBatch:
		if depth > 0 {
			d.fail("nested batch")
			return c
		}
		n := d.count(maxBatchLen)
		if n > 0 {
			c.Commands = make([]Command, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			size := d.uvarint()
			if d.err != nil {
				break
			}
			if size > uint64(len(d.buf)-d.off) {
				d.fail("batch entry of %d bytes overruns", size)
				break
			}
			end := d.off + int(size)
			sub := decoder{buf: d.buf[:end], off: d.off}
			cmd := sub.command(depth + 1)
			if sub.err == nil && sub.off != end {
				sub.fail("batch entry has %d trailing bytes", end-sub.off)
			}
			if sub.err != nil {
				d.err = sub.err
				break
			}
			d.off = end
			c.Commands = append(c.Commands, cmd)
		}
	}
	return c
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("short")
		return 0
	}
	b := d.buf[d.off]
	d.off++
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) duration() time.Duration {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.fail("duration overflows")
		return 0
	}
	return time.Duration(v)
}

func (d *decoder) count(max int) int {
	v := d.uvarint()
	if v > uint64(max) {
		d.fail("count %d exceeds %d", v, max)
		return 0
	}
	// Each element takes at least one byte: a count larger than what is left
	// cannot be honest, and must not drive an allocation.
	if v > uint64(len(d.buf)-d.off) {
		d.fail("count %d exceeds remaining bytes", v)
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.count(maxStringLen)
	if d.err != nil {
		return ""
	}
	s := string(d.buf[d.off : d.off+n])
	d.off += n
	return s
}

func (d *decoder) metadata() map[string]string {
	n := d.count(maxMetadataKeys)
	if d.err != nil || n == 0 {
		return nil
	}
	md := make(map[string]string, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k, v := d.string(), d.string()
		if i > 0 && k <= prev {
			d.fail("metadata keys not strictly sorted")
			break
		}
		prev = k
		md[k] = v
	}
	return md
}
