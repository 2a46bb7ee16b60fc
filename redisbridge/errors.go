package redisbridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
)

// ErrMalformed: a key the bridge reads holds data the bridge did not write
// (a wrong type, a missing or ill-formed field, a lease without expiry).
// The bridge changes nothing when it finds one; an operator must repair or
// delete the key. *MalformedError carries the detail.
var ErrMalformed = errors.New("redisbridge: malformed data in redis")

// MalformedError reports malformed data found in Redis. It matches
// ErrMalformed.
type MalformedError struct {
	// Key is the Redis key holding the data, when known.
	Key string
	// Reason says what is wrong with it.
	Reason string
}

func (e *MalformedError) Error() string {
	if e.Key == "" {
		return "redisbridge: malformed data in redis: " + e.Reason
	}
	return fmt.Sprintf("redisbridge: malformed data in redis at key %q: %s", e.Key, e.Reason)
}

// Is reports whether target is ErrMalformed.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(key, format string, args ...any) error {
	return &MalformedError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Server error prefixes that mean Redis refused the command without running
// it: a retry is safe and the command certainly had no effect.
var refusedPrefixes = []string{
	"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY",
	"NOREPLICAS", "OOM", "MOVED", "ASK", "MISCONF",
}

// mapError turns an error from a Redis call into the bridge's errors:
//
//   - error replies of the bridge's scripts: *MalformedError, or a plain
//     error for an exhausted counter;
//   - a closed client: ErrClosed;
//   - server refusals (LOADING, READONLY, BUSY, …) and failures to get a
//     connection at all (dial errors, pool timeouts): *UnavailableError
//     with OutcomeNotApplied, since the command never ran;
//   - any other network failure or timeout: *UnavailableError with
//     OutcomeUnknown, since the command may have run;
//   - any other error reply (a permission or authentication problem, a
//     bug): a plain error, which retrying would not cure.
//
// keys are the keys the script ran on, to name the malformed one.
func mapError(op string, keys []string, err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "RAFTLEASE_MALFORMED "):
			return scriptMalformed(keys, strings.TrimPrefix(msg, "RAFTLEASE_MALFORMED "))
		case strings.HasPrefix(msg, "RAFTLEASE_EXHAUSTED "):
			key, reason := scriptKey(keys, strings.TrimPrefix(msg, "RAFTLEASE_EXHAUSTED "))
			return fmt.Errorf("redisbridge: %s: counter %q cannot grow: %s", op, key, reason)
		case strings.HasPrefix(msg, "WRONGTYPE"), strings.Contains(msg, "WRONGTYPE Operation"):
			return &MalformedError{Reason: msg}
		}
		for _, p := range refusedPrefixes {
			if strings.HasPrefix(msg, p+" ") || msg == p {
				return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("redisbridge: %s: %w", op, err)}
			}
		}
		return fmt.Errorf("redisbridge: %s: %w", op, err)
	}
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: redisbridge: %s: the redis client is closed", raftlease.ErrClosed, op)
	}
	outcome := raftlease.OutcomeUnknown
	if neverSent(err) {
		outcome = raftlease.OutcomeNotApplied
	}
	return &raftlease.UnavailableError{Outcome: outcome, Err: fmt.Errorf("redisbridge: %s: %w", op, err)}
}

// neverSent reports whether err shows that the command never left the
// client: no connection could be made or taken from the pool.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	return errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted)
}

// notSent wraps a ctx error noticed before a command was sent.
func notSent(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &raftlease.UnavailableError{Outcome: raftlease.OutcomeNotApplied, Err: fmt.Errorf("redisbridge: %s: %w", op, err)}
	}
	return err
}

// scriptMalformed decodes "<i> <reason>" from a script's error reply.
func scriptMalformed(keys []string, rest string) error {
	key, reason := scriptKey(keys, rest)
	return &MalformedError{Key: key, Reason: reason}
}

func scriptKey(keys []string, rest string) (key, reason string) {
	idx, reason, ok := strings.Cut(rest, " ")
	if !ok {
		return "", rest
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 1 || i > len(keys) {
		return "", rest
	}
	return keys[i-1], reason
}
