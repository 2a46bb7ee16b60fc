package checker

import (
	"math"
	"slices"
	"time"
)

// Distribution summarises a set of durations.
type Distribution struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
	// Unrecovered counts, for recovery times, the episodes that never
	// recovered before the run ended (they are not in the percentiles).
	Unrecovered int `json:"unrecovered,omitempty"`
}

// Summarise returns the distribution of samples, with nearest-rank
// percentiles. It does not modify samples.
func Summarise(samples []time.Duration) Distribution {
	if len(samples) == 0 {
		return Distribution{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Distribution{
		Count: len(s),
		Min:   s[0],
		P50:   Percentile(s, 0.50),
		P90:   Percentile(s, 0.90),
		P99:   Percentile(s, 0.99),
		Max:   s[len(s)-1],
	}
}

// Percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
