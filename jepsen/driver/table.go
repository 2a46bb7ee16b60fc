package driver

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen"
	"github.com/raftlease/raftlease/jepsen/report"
)

// Table writes a Markdown table summarising the run directories found
// under roots (each directory holding a results.json), one row per
// family and mode: seeds, runs × minutes, passes, violations, and the
// recovery-time percentiles pooled over the runs.
func Table(w io.Writer, roots ...string) error {
	type row struct {
		family, mode string
		nodes        int
		seeds        []uint64
		runs, pass   int
		minutes      float64
		violations   int
		detected     int
		control      bool
		evidence     string
		found        int64
		leader, heal []time.Duration
		holder       []time.Duration
	}
	rows := map[string]*row{}
	var order []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != jepsen.ResultsFile {
				return err
			}
			r, err := report.ReadResults(path)
			if err != nil {
				return err
			}
			mode := r.Config.Extra["mode"]
			nodes := len(r.Config.Nodes) // the initial members, not the spares
			if r.Schedule != nil {
				nodes = len(r.Schedule.Nodes)
			}
			key := fmt.Sprintf("%s/%s/%d", r.Family, mode, nodes)
			x := rows[key]
			if x == nil {
				x = &row{family: r.Family, mode: mode, nodes: nodes}
				rows[key] = x
				order = append(order, key)
			}
			o := Judge(filepath.Dir(path), r)
			x.seeds = append(x.seeds, r.Seed)
			x.runs++
			x.minutes += float64(r.DurationNs) / float64(time.Minute)
			x.violations += r.Violations()
			if o.Pass {
				x.pass++
			}
			if o.Control != nil {
				x.control = true
				what, n := o.Control.Evidence(r)
				x.evidence, x.found = what, x.found+n
				if o.Detected {
					x.detected++
				}
			}
			pool := func(dst *[]time.Duration, d report.Results, pick func(report.Results) (p50, p99 time.Duration, n int)) {
				p50, p99, n := pick(d)
				if n > 0 {
					*dst = append(*dst, p50, p99)
				}
			}
			pool(&x.leader, r, func(r report.Results) (time.Duration, time.Duration, int) {
				return r.Recovery.LeaderLoss.P50, r.Recovery.LeaderLoss.P99, r.Recovery.LeaderLoss.Count
			})
			pool(&x.heal, r, func(r report.Results) (time.Duration, time.Duration, int) {
				return r.Recovery.HealToWrite.P50, r.Recovery.HealToWrite.P99, r.Recovery.HealToWrite.Count
			})
			pool(&x.holder, r, func(r report.Results) (time.Duration, time.Duration, int) {
				return r.Recovery.HolderDeath.P50, r.Recovery.HolderDeath.P99, r.Recovery.HolderDeath.Count
			})
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	slices.Sort(order)
	fmt.Fprintln(w, "| family | mode | nodes | seeds | runs × min | passed | violations | leader loss → new leader p50 / p99 | heal → first write p50 / p99 | holder stopped → new holder's write p50 / p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range order {
		x := rows[k]
		seeds := make([]string, len(x.seeds))
		slices.Sort(x.seeds)
		for i, s := range x.seeds {
			seeds[i] = fmt.Sprint(s)
		}
		passed := fmt.Sprintf("%d/%d", x.pass, x.runs)
		viol := fmt.Sprint(x.violations)
		if x.control {
			passed = fmt.Sprintf("%d/%d detected", x.detected, x.runs)
			viol = fmt.Sprintf("%d %s (expected)", x.found, x.evidence)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %d × %.1f | %s | %s | %s | %s | %s |\n", x.family, x.mode, x.nodes, strings.Join(seeds, ", "),
			x.runs, x.minutes/float64(x.runs), passed, viol, pair(x.leader), pair(x.heal), pair(x.holder))
	}
	return nil
}

// pair reports the median of the runs' p50s and the largest p99, from
// samples appended as (p50, p99) pairs.
func pair(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	var p50s []time.Duration
	var p99 time.Duration
	for i := 0; i+1 < len(ds); i += 2 {
		p50s = append(p50s, ds[i])
		p99 = max(p99, ds[i+1])
	}
	slices.Sort(p50s)
	return fmt.Sprintf("%v / %v", p50s[len(p50s)/2].Round(time.Millisecond), p99.Round(time.Millisecond))
}
