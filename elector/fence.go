package elector

import (
	"fmt"
	"sync"

	"github.com/raftlease/raftlease"
)

// Fence is the downstream half of fencing: a resource that leaders write to
// keeps one Fence and checks the token of every write against it. A write
// is accepted only if its token is at least the highest token seen for the
// same resource key, so a former leader that was paused or cut off, and
// still believes it leads, cannot overwrite what its successor wrote.
//
// Check the token in the same critical section as the write it guards
// (hold your own lock across Check and the write), or let the resource do
// the comparison itself, as a database does with
// "UPDATE … WHERE fence_token <= ?" (see the package examples).
//
// The zero value is ready to use. A Fence is safe for concurrent use. It
// remembers one token per key for as long as it lives.
type Fence struct {
	mu      sync.Mutex
	highest map[string]uint64
}

// StaleTokenError reports a write refused by a Fence. It matches
// raftlease.ErrStaleToken.
type StaleTokenError struct {
	Key     string
	Token   uint64
	Highest uint64
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("raftlease: stale fencing token: key %q: token %d is lower than %d, already seen", e.Key, e.Token, e.Highest)
}

// Is makes StaleTokenError match raftlease.ErrStaleToken.
func (e *StaleTokenError) Is(target error) bool { return target == raftlease.ErrStaleToken }

// Check accepts a write to key under token when token is at least the
// highest token seen for key, and records token as the highest. Otherwise it
// returns a *StaleTokenError, matching raftlease.ErrStaleToken, and records
// nothing. Token 0 is never issued by a store and is refused with an error
// matching raftlease.ErrInvalidArgument.
func (f *Fence) Check(key string, token uint64) error {
	if token == 0 {
		return &raftlease.FieldError{Field: "token", Reason: "must be at least 1"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.highest[key]; token < h {
		return &StaleTokenError{Key: key, Token: token, Highest: h}
	}
	if f.highest == nil {
		f.highest = make(map[string]uint64)
	}
	f.highest[key] = token
	return nil
}

// Highest returns the highest token accepted for key, or 0.
func (f *Fence) Highest(key string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.highest[key]
}
