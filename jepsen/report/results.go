package report

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// Results is the content of results.json.
type Results struct {
	// Summary is the run's one-line summary (Summary(r)).
	Summary string `json:"summary"`
	// Valid: every checker's verdict is valid.
	Valid  bool              `json:"valid"`
	Seed   uint64            `json:"seed"`
	Family string            `json:"family,omitempty"`
	GitSHA string            `json:"git_sha,omitempty"`
	Config history.RunConfig `json:"config"`
	// The span of the history on the CLOCK_MONOTONIC axis.
	StartNs    int64 `json:"start_ns"`
	EndNs      int64 `json:"end_ns"`
	DurationNs int64 `json:"duration_ns"`

	Ops    OpCounts    `json:"ops"`
	Writes WriteCounts `json:"fenced_writes"`
	// Latencies per operation kind, of completed operations.
	Latencies map[string]checker.Distribution `json:"latency"`
	Verdicts  []checker.Verdict               `json:"verdicts"`
	Recovery  checker.Recovery                `json:"recovery"`
	// Schedule is the nemesis schedule, when the run directory holds one.
	Schedule *nemesis.Schedule `json:"schedule,omitempty"`
	// HistoryTruncated: a history file ended in a torn line.
	HistoryTruncated bool `json:"history_truncated,omitempty"`
	// Files names the report files of the run directory by role
	// ("history", "timeline", "linearizability").
	Files map[string]string `json:"files"`
}

// OpCounts counts the operations of a history.
type OpCounts struct {
	Total   int `json:"total"`
	Pending int `json:"pending"`
	// ByKind counts per kind and outcome ("pending" for pending ones).
	ByKind map[string]map[string]int `json:"by_kind"`
}

// WriteCounts counts the fenced register's writes.
type WriteCounts struct {
	FencedAccepted int `json:"fenced_accepted"`
	FencedRejected int `json:"fenced_rejected"`
	Unfenced       int `json:"unfenced"`
}

// CountOps counts the operations of h.
func CountOps(h *history.History) OpCounts {
	c := OpCounts{ByKind: map[string]map[string]int{}}
	for _, op := range h.Ops {
		c.Total++
		out := string(op.Outcome)
		if op.Pending() {
			c.Pending++
			out = "pending"
		}
		if c.ByKind[string(op.Kind)] == nil {
			c.ByKind[string(op.Kind)] = map[string]int{}
		}
		c.ByKind[string(op.Kind)][out]++
	}
	return c
}

// CountWrites counts the fenced-register writes of h.
func CountWrites(h *history.History) WriteCounts {
	var c WriteCounts
	for _, w := range h.Writes {
		switch {
		case !w.Fenced:
			c.Unfenced++
		case w.Accepted:
			c.FencedAccepted++
		default:
			c.FencedRejected++
		}
	}
	return c
}

// Violations counts the violations of the failing (not informational)
// verdicts.
func (r Results) Violations() int {
	n := 0
	for _, v := range r.Verdicts {
		if !v.Informational {
			n += v.ViolationCount
		}
	}
	return n
}

// Failed names the checkers whose verdict is invalid.
func (r Results) Failed() []string {
	var out []string
	for _, v := range r.Verdicts {
		if !v.Valid {
			out = append(out, v.Name)
		}
	}
	return out
}

// Verdict returns the verdict of the named checker.
func (r Results) Verdict(name string) (checker.Verdict, bool) {
	i := slices.IndexFunc(r.Verdicts, func(v checker.Verdict) bool { return v.Name == name })
	if i < 0 {
		return checker.Verdict{}, false
	}
	return r.Verdicts[i], true
}

// Summary is the one-line summary of a run:
//
//	run seed=42 family=partition ops=5123 valid=false violations=3 failed=linearizability
func Summary(r Results) string {
	family := r.Family
	if family == "" {
		family = "-"
	}
	s := fmt.Sprintf("run seed=%d family=%s ops=%d valid=%t violations=%d", r.Seed, family, r.Ops.Total, r.Valid, r.Violations())
	if f := r.Failed(); len(f) > 0 {
		s += " failed=" + strings.Join(f, ",")
	}
	if r.DurationNs > 0 {
		s += fmt.Sprintf(" duration=%v", time.Duration(r.DurationNs).Round(time.Millisecond))
	}
	return s
}

// WriteResults stores r as indented JSON at path.
func WriteResults(path string, r Results) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// ReadResults loads results stored by WriteResults.
func ReadResults(path string) (Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Results{}, fmt.Errorf("report: %w", err)
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return Results{}, fmt.Errorf("report: %s: %w", path, err)
	}
	return r, nil
}
