package checker

import (
	"fmt"
	"hash/fnv"

	"github.com/anishathalye/porcupine"

	"github.com/raftlease/raftlease/jepsen/history"
)

// The lease-register model for porcupine. One partition per lease name.
// TTLs are long in this workload, so nothing expires.
//
// State: the holder and token of the lease ("" when free), and the
// highest token known to have been issued for the name. Tokens are issued
// from one counter shared by every name, so a new holder's exact token is
// not predictable: the model only requires it to exceed the highest token
// issued for this name so far.
//
// An acquire whose outcome is ambiguous may have granted the lease under a
// token nobody saw; the state then holds that holder with known=false and
// the first later observation of the lease (a get, a lease_held refusal,
// the holder's idempotent re-acquire, renew or release) fixes the token,
// which must exceed highest.

type linInput struct {
	name   string
	kind   history.Kind
	holder string
	token  uint64
}

type linOutput struct {
	// ambiguous: the operation may or may not have taken effect.
	ambiguous bool
	ok        bool
	code      string
	// holder and token of the lease the answer carried (0: none).
	holder string
	token  uint64
}

type leaseState struct {
	holder  string
	token   uint64
	known   bool
	highest uint64
}

var freeState = leaseState{known: true}

// observe returns the state after seeing the lease held under token: the
// same state when the token matches, the state with the token fixed when
// it was unknown, and false when it contradicts the state.
func (s leaseState) observe(token uint64) (leaseState, bool) {
	if s.known {
		return s, token == s.token
	}
	if token <= s.highest {
		return s, false
	}
	return leaseState{holder: s.holder, token: token, known: true, highest: token}, true
}

// holds reports whether holder certainly holds the lease under token.
func (s leaseState) holds(holder string, token uint64) bool {
	return s.holder == holder && s.known && s.token == token
}

func one(s leaseState) []any { return []any{s} }

func leaseStep(s leaseState, in linInput, out linOutput) []any {
	if out.ambiguous {
		return ambiguousStep(s, in)
	}
	switch in.kind {
	case history.Acquire:
		switch {
		case out.ok:
			if out.holder != "" && out.holder != in.holder {
				return nil
			}
			switch s.holder {
			case "":
				if out.token <= s.highest {
					return nil
				}
				return one(leaseState{holder: in.holder, token: out.token, known: true, highest: out.token})
			case in.holder: // idempotent: the same token
				if ns, ok := s.observe(out.token); ok {
					return one(ns)
				}
			}
			return nil
		case out.code == history.CodeLeaseHeld:
			if s.holder == "" || s.holder == in.holder {
				return nil
			}
			if out.holder != "" && out.holder != s.holder {
				return nil
			}
			if out.token == 0 {
				return one(s)
			}
			if ns, ok := s.observe(out.token); ok {
				return one(ns)
			}
		}
		return nil
	case history.Renew, history.Release:
		switch {
		case out.ok:
			if s.holder != in.holder || (out.token != 0 && out.token != in.token) {
				return nil
			}
			ns, ok := s.observe(in.token)
			if !ok {
				return nil
			}
			if in.kind == history.Release {
				return one(leaseState{known: true, highest: ns.highest})
			}
			return one(ns)
		case out.code == history.CodeNotHolder:
			if in.kind == history.Release {
				return releaseRefusedStep(s, in)
			}
			if s.holds(in.holder, in.token) {
				return nil
			}
			return one(s)
		}
		return nil
	case history.Get:
		switch {
		case out.ok:
			if s.holder == "" || out.holder != s.holder {
				return nil
			}
			if ns, ok := s.observe(out.token); ok {
				return one(ns)
			}
		case out.code == history.CodeNotFound:
			if s.holder == "" {
				return one(s)
			}
		}
		return nil
	}
	return nil
}

// releaseRefusedStep is a release answered not_holder. The Store contract
// allows that answer for a release that did take effect: a client retried
// it after an attempt of unknown outcome, and the retry found the lease
// already free. So the answer shows that, once it is given, the holder no
// longer holds the lease under that token: either it did not (nothing
// changed), or it did and this release freed it.
func releaseRefusedStep(s leaseState, in linInput) []any {
	free := leaseState{known: true, highest: s.highest}
	switch {
	case s.holds(in.holder, in.token):
		return one(free)
	case s.holder == in.holder && !s.known && in.token > s.highest:
		free.highest = in.token
		return []any{s, free}
	}
	return one(s)
}

// ambiguousStep returns the states an operation of unknown outcome leaves
// when it takes effect at this point. Its return is put after the end of
// the history, so porcupine may also place it after every other
// operation, where its effect is never seen: that is how "it never took
// effect" is modelled, without a branch here. The one branch left is a
// release by the holder of a lease whose token is unknown: it frees the
// lease only if its token is the unknown one.
func ambiguousStep(s leaseState, in linInput) []any {
	switch in.kind {
	case history.Acquire:
		if s.holder == "" {
			return one(leaseState{holder: in.holder, highest: s.highest})
		}
	case history.Release:
		switch {
		case s.holds(in.holder, in.token):
			return one(leaseState{known: true, highest: s.highest})
		case s.holder == in.holder && !s.known && in.token > s.highest:
			return []any{s, leaseState{known: true, highest: in.token}}
		}
	}
	return one(s)
}

// leaseModel is the porcupine model, partitioned by lease name in sorted
// name order.
func leaseModel(names []string) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
			idx := make(map[string]int, len(names))
			for i, n := range names {
				idx[n] = i
			}
			parts := make([][]porcupine.Operation, len(names))
			for _, op := range ops {
				i := idx[op.Input.(linInput).name]
				parts[i] = append(parts[i], op)
			}
			out := parts[:0]
			for _, p := range parts {
				if len(p) > 0 {
					out = append(out, p)
				}
			}
			return out
		},
		Init: func() []any { return []any{freeState} },
		Step: func(state, input, output any) []any {
			return leaseStep(state.(leaseState), input.(linInput), output.(linOutput))
		},
		Hash: func(state any) uint64 {
			s := state.(leaseState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%s\x00%d\x00%t\x00%d", s.holder, s.token, s.known, s.highest)
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			var call string
			switch in.kind {
			case history.Acquire:
				call = fmt.Sprintf("acquire(%s)", in.holder)
			case history.Renew, history.Release:
				call = fmt.Sprintf("%s(%s, %d)", in.kind, in.holder, in.token)
			default:
				call = "get()"
			}
			var ret string
			switch {
			case out.ambiguous:
				ret = "?"
			case out.ok && out.token != 0:
				ret = fmt.Sprintf("ok %s/%d", out.holder, out.token)
			case out.ok:
				ret = "ok"
			case out.token != 0:
				ret = fmt.Sprintf("%s %s/%d", out.code, out.holder, out.token)
			default:
				ret = out.code
			}
			return call + " → " + ret
		},
		DescribeState: func(state any) string {
			s := state.(leaseState)
			switch {
			case s.holder == "":
				return fmt.Sprintf("free (highest %d)", s.highest)
			case !s.known:
				return fmt.Sprintf("%s/? (token > %d)", s.holder, s.highest)
			}
			return fmt.Sprintf("%s/%d", s.holder, s.token)
		},
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
	return nm.ToModel()
}
