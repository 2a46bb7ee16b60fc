package checker

import (
	"fmt"
	"time"

	"github.com/raftlease/raftlease/jepsen/history"
)

// Checker names, as they appear in verdicts and results.json.
const (
	NameLinearizability   = "linearizability"
	NameFencedExclusion   = "fenced-exclusion"
	NameUnfencedOverlap   = "unfenced-overlap"
	NameTokenMonotonicity = "token-monotonicity"
	NameNoLostAcks        = "no-lost-acks"
	NameNoEarlyTakeover   = "no-early-takeover"
	NameOneLeaderPerTerm  = "one-leader-per-term"
	NameConvergence       = "convergence"
	NameNoHangs           = "no-hangs"
	NameNodeLogs          = "node-logs"
	NameDamagedData       = "damaged-data-refused"
)

// Violation is one breach of a checker's property.
type Violation struct {
	Message string `json:"message"`
	// Refs name the records that show it (history.Op.Ref and friends, or
	// "file:line" for logs).
	Refs []string `json:"refs,omitempty"`
	// Time is when it happened, on the history's clock, when it has one.
	Time int64 `json:"time_ns,omitempty"`
}

// Verdict is a checker's answer.
type Verdict struct {
	Name  string `json:"name"`
	Valid bool   `json:"valid"`
	// Skipped: the history holds nothing this checker looks at (no fenced
	// writes, no status samples, ...). A skipped verdict is valid.
	Skipped bool `json:"skipped,omitempty"`
	// Informational: the checker reports findings that are not failures
	// (unfenced overlap). It is always valid; its findings are listed as
	// Violations.
	Informational bool   `json:"informational,omitempty"`
	Note          string `json:"note,omitempty"`
	// Violations are the first Options.MaxViolations violations, in the
	// order found; ViolationCount counts them all.
	Violations     []Violation      `json:"violations,omitempty"`
	ViolationCount int              `json:"violation_count"`
	Counters       map[string]int64 `json:"counters,omitempty"`
}

// Options tune the checkers. OptionsFor derives them from a run's
// configuration.
type Options struct {
	// MaxDrift is the clock-rate drift bound (0.01 = 1%).
	MaxDrift float64
	// OpTimeout bounds client operations; zero skips the no-hangs check.
	OpTimeout time.Duration
	// HangGrace is how much longer than OpTimeout an operation may take to
	// return before it counts as hung. Zero means DefaultHangGrace.
	HangGrace time.Duration
	// LinearizabilityTimeout bounds porcupine; zero means
	// DefaultLinearizabilityTimeout. A timeout is a failure.
	LinearizabilityTimeout time.Duration
	// MaxViolations bounds the violations a verdict lists; zero means
	// DefaultMaxViolations.
	MaxViolations int
}

// Defaults for zero Options fields.
const (
	DefaultHangGrace              = time.Second
	DefaultLinearizabilityTimeout = 5 * time.Minute
	DefaultMaxViolations          = 10
)

// OptionsFor returns the options for a run with configuration cfg.
func OptionsFor(cfg history.RunConfig) Options {
	return Options{MaxDrift: cfg.MaxDrift, OpTimeout: cfg.OpTimeout()}
}

func (o Options) maxViolations() int {
	if o.MaxViolations > 0 {
		return o.MaxViolations
	}
	return DefaultMaxViolations
}

func (o Options) hangGrace() time.Duration {
	if o.HangGrace > 0 {
		return o.HangGrace
	}
	return DefaultHangGrace
}

func (o Options) linTimeout() time.Duration {
	if o.LinearizabilityTimeout > 0 {
		return o.LinearizabilityTimeout
	}
	return DefaultLinearizabilityTimeout
}

// EarliestExpiry is the earliest real time at which a lease granted or
// renewed by a request sent at invoke (a Now reading) with the given TTL
// can expire, when clock rates differ by at most drift: the store's
// deadline is at least invoke + ttl on a clock that runs at most drift
// fast, so at least ttl×(1−drift) of real time passes first.
func EarliestExpiry(invoke int64, ttl time.Duration, drift float64) int64 {
	return invoke + int64(float64(ttl)*(1-drift))
}

// collector gathers violations for one verdict.
type collector struct {
	v   Verdict
	max int
}

func newCollector(name string, o Options) *collector {
	return &collector{v: Verdict{Name: name, Valid: true, Counters: map[string]int64{}}, max: o.maxViolations()}
}

func (c *collector) add(t int64, refs []string, format string, args ...any) {
	c.v.ViolationCount++
	if len(c.v.Violations) < c.max {
		c.v.Violations = append(c.v.Violations, Violation{Message: fmt.Sprintf(format, args...), Refs: refs, Time: t})
	}
}

func (c *collector) count(name string, n int64) { c.v.Counters[name] += n }

func (c *collector) verdict() Verdict {
	if !c.v.Informational {
		c.v.Valid = c.v.ViolationCount == 0
	}
	if len(c.v.Counters) == 0 {
		c.v.Counters = nil
	}
	return c.v
}

func (c *collector) skip(note string) Verdict {
	c.v.Skipped, c.v.Note = true, note
	return c.verdict()
}

func refs(r ...string) []string { return r }

// ms formats nanoseconds as milliseconds for messages.
func ms(ns int64) string { return fmt.Sprintf("%.1fms", float64(ns)/1e6) }
