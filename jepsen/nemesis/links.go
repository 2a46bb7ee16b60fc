package nemesis

import (
	"cmp"
	"slices"
)

// cutBoth cuts every link between a node of a and a node of b, both ways.
func cutBoth(a, b []string) []Link {
	var out []Link
	for _, x := range a {
		for _, y := range b {
			if x != y {
				out = append(out, Link{x, y}, Link{y, x})
			}
		}
	}
	return sortLinks(out)
}

func sortLinks(ls []Link) []Link {
	slices.SortFunc(ls, func(a, b Link) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	return slices.Compact(ls)
}

func without(nodes []string, drop ...string) []string {
	var out []string
	for _, n := range nodes {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// IsolateLinks cuts target off from every other node, both ways.
func IsolateLinks(target string, nodes []string) []Link {
	return cutBoth([]string{target}, without(nodes, target))
}

// SplitLinks cuts every link between side a and side b, both ways.
func SplitLinks(a, b []string) []Link { return cutBoth(a, b) }

// OneWayLinks drops what from sends to every other node; traffic to from
// still arrives.
func OneWayLinks(from string, nodes []string) []Link {
	var out []Link
	for _, n := range without(nodes, from) {
		out = append(out, Link{from, n})
	}
	return sortLinks(out)
}

// RingLinks leaves each node of the ring (in the order given) connected
// only to its two neighbours: on 5 nodes every node still reaches a
// majority, through different majorities, but no two non-adjacent nodes
// talk directly.
func RingLinks(ring []string) []Link {
	n := len(ring)
	var out []Link
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			if d := (j - i + n) % n; d != 1 && d != n-1 {
				out = append(out, Link{ring[i], ring[j]})
			}
		}
	}
	return sortLinks(out)
}

// BridgeLinks splits nodes into left and right, which cannot talk, and a
// bridge node that talks to both.
func BridgeLinks(left, right []string) []Link { return cutBoth(left, right) }
