package checker

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/raftlease/raftlease/jepsen/history"
)

// Linearization is porcupine's result for a history, kept to draw its
// visualisation.
type Linearization struct {
	model       porcupine.Model
	info        porcupine.LinearizationInfo
	Result      porcupine.CheckResult
	annotations int
}

// WriteHTML writes porcupine's interactive visualisation (one panel per
// lease name, nemesis windows as annotations).
func (l *Linearization) WriteHTML(w io.Writer) error {
	return porcupine.Visualize(l.model, l.info, w)
}

// WriteFile writes the visualisation to path.
func (l *Linearization) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := l.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Linearizability checks the register-workload operations of h
// (Workload == history.WorkloadRegister) with porcupine against the lease
// model of model.go, one partition per lease name:
//
//   - ok and refused operations are placed between their invoke and
//     completion;
//   - ambiguous and pending operations may take effect at any instant after
//     their invoke, or never: their return is put after the end of the
//     history and the model allows both outcomes;
//   - failed operations (not_applied, invalid_argument) certainly did not
//     take effect and are dropped, and so are ambiguous gets and renews,
//     which leave the modelled state unchanged whether or not they applied,
//     ambiguous acquires whose grant no later operation shows (see
//     neededAmbiguousAcquires), and ambiguous releases of a token their
//     holder was never seen holding.
//
// The history is valid only if porcupine answers Ok: Illegal is a
// violation per lease name that has no linearization, naming the
// earliest-invoked operation outside the longest linearizable prefix; a
// timeout (Unknown) is a failure too. The returned Linearization (nil when
// there were no register operations) draws porcupine's visualisation.
func Linearizability(h *history.History, o Options) (Verdict, *Linearization) {
	c := newCollector(NameLinearizability, o)
	ops, dropped, inert, unobserved := porcupineOps(h)
	c.count("dropped_failed", int64(dropped))
	c.count("dropped_inert_ambiguous", int64(inert))
	c.count("dropped_unobserved_ambiguous", int64(unobserved))
	if len(ops) == 0 {
		return c.skip("no register-workload operations"), nil
	}
	names := linNames(ops)
	model := leaseModel(names)
	result, info := porcupine.CheckOperationsVerbose(model, ops, o.linTimeout())
	lin := &Linearization{model: model, info: info, Result: result}
	lin.annotate(h)
	c.count("operations", int64(len(ops)))
	c.count("names", int64(len(names)))
	ambiguous := 0
	for _, op := range ops {
		if op.Output.(linOutput).ambiguous {
			ambiguous++
		}
	}
	c.count("ambiguous", int64(ambiguous))
	switch result {
	case porcupine.Ok:
	case porcupine.Unknown:
		c.add(0, nil, "porcupine did not finish within %s: result unknown, counted as a failure", o.linTimeout())
	default:
		c.v.Note = "porcupine: illegal"
		reportIllegal(c, names, ops, info)
		if c.v.ViolationCount == 0 {
			c.add(0, nil, "porcupine found the history illegal")
		}
	}
	return c.verdict(), lin
}

// porcupineOps converts the register operations of h, dropping failed ones.
func porcupineOps(h *history.History) (ops []porcupine.Operation, dropped, inert, unobserved int) {
	var procs []string
	for _, op := range h.Ops {
		if op.Workload == history.WorkloadRegister {
			procs = append(procs, op.Process)
		}
	}
	slices.Sort(procs)
	procs = slices.Compact(procs)
	client := make(map[string]int, len(procs))
	for i, p := range procs {
		client[p] = i
	}
	horizon := h.LastTime() + 1
	needed := neededAmbiguousAcquires(h)
	held := heldTokens(h)
	for _, op := range h.Ops {
		if op.Workload != history.WorkloadRegister {
			continue
		}
		if op.Outcome == history.Failed {
			dropped++
			continue
		}
		if (op.Kind == history.Get || op.Kind == history.Renew) && (op.Outcome == history.Ambiguous || op.Outcome == history.Pending) {
			// Whether or not it applied, it leaves the modelled state as it
			// was (nothing expires in this workload) and constrains nothing:
			// leaving it out is equivalent and spares porcupine an operation
			// that stays open to the end.
			inert++
			continue
		}
		if op.Kind == history.Acquire && (op.Outcome == history.Ambiguous || op.Outcome == history.Pending) && !needed[op.Name][op.Holder] {
			// An ambiguous acquire whose grant nothing shows (see
			// neededAmbiguousAcquires): modelled as never applied.
			unobserved++
			continue
		}
		if op.Kind == history.Release && (op.Outcome == history.Ambiguous || op.Outcome == history.Pending) &&
			!needed[op.Name][op.Holder] && !held[heldKey{op.Name, op.Holder, op.Token}] {
			// The holder was never seen holding that token: whether or not
			// it applied, the release freed nothing.
			inert++
			continue
		}
		in := linInput{name: op.Name, kind: op.Kind, holder: op.Holder, token: op.Token}
		var out linOutput
		ret := op.Complete
		switch op.Outcome {
		case history.OK:
			out.ok = true
		case history.Refused:
			out.code = op.Code
		default: // Ambiguous, Pending
			out.ambiguous = true
			ret = horizon
		}
		if op.Lease != nil && !out.ambiguous {
			out.holder, out.token = op.Lease.Holder, op.Lease.Token
		}
		ops = append(ops, porcupine.Operation{
			ClientId: client[op.Process], Input: in, Output: out,
			Call: op.Invoke, Return: ret, Metadata: op.Ref(),
		})
	}
	return ops, dropped, inert, unobserved
}

func linNames(ops []porcupine.Operation) []string {
	var names []string
	for _, op := range ops {
		names = append(names, op.Input.(linInput).name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// reportIllegal names, for each partition without a full linearization,
// the earliest-invoked operation the longest partial linearization leaves
// out.
func reportIllegal(c *collector, names []string, ops []porcupine.Operation, info porcupine.LinearizationInfo) {
	parts := info.PartialLinearizationsOperations()
	count := map[string]int{}
	for _, op := range ops {
		count[op.Input.(linInput).name]++
	}
	for i, partials := range parts {
		if i >= len(names) {
			break
		}
		name := names[i]
		// The longest partial linearization; ties broken by their operation
		// refs, so the report is the same on every replay.
		var longest []porcupine.Operation
		longestKey := ""
		for _, p := range partials {
			key := opsKey(p)
			if len(p) > len(longest) || (len(p) == len(longest) && key < longestKey) {
				longest, longestKey = p, key
			}
		}
		if len(longest) >= count[name] {
			continue
		}
		in := map[string]bool{}
		for _, op := range longest {
			in[fmt.Sprint(op.Metadata)] = true
		}
		var first *porcupine.Operation
		for j := range ops {
			op := &ops[j]
			if op.Input.(linInput).name != name || in[fmt.Sprint(op.Metadata)] {
				continue
			}
			if first == nil || op.Call < first.Call {
				first = op
			}
		}
		var prefix []string
		for _, op := range longest {
			prefix = append(prefix, fmt.Sprint(op.Metadata))
		}
		if first == nil {
			c.add(0, nil, "lease %q: no linearization", name)
			continue
		}
		desc := fmt.Sprint(first.Metadata)
		c.add(first.Call, append([]string{desc}, lastN(prefix, 3)...),
			"lease %q: not linearizable: the longest linearizable prefix holds %d of %d operations (ending %s); %s cannot be placed after it",
			name, len(longest), count[name], strings.Join(lastN(prefix, 3), ", "), desc)
	}
}

func opsKey(ops []porcupine.Operation) string {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprint(&b, op.Metadata, "\x00")
	}
	return b.String()
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// annotate marks every nemesis window on the visualisation.
func (l *Linearization) annotate(h *history.History) {
	var anns []porcupine.Annotation
	for _, w := range NemesisWindows(h) {
		desc := w.Kind
		if len(w.Targets) > 0 {
			desc += " " + strings.Join(w.Targets, ",")
		}
		anns = append(anns, porcupine.Annotation{
			Tag: "nemesis", Start: w.Start, End: w.Stop, Description: desc,
			Details: w.Detail, BackgroundColor: "#fde2c4",
		})
	}
	l.annotations = len(anns)
	l.info.AddAnnotations(anns)
}
