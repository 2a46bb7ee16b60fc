package checker

import (
	"strings"

	"github.com/raftlease/raftlease/jepsen/history"
)

// KindStoreCorrupt is the nemesis kind whose starts DamagedDataRefused
// checks (nemesis.StoreCorrupt; the checker does not import the nemesis).
const KindStoreCorrupt = "store-corrupt"

// ObservedRefused prefixes a store-corrupt start's Observed when the
// damaged node refused to start.
const ObservedRefused = "refused: "

// DamagedDataRefused checks that every node whose data dir the nemesis
// damaged (store-corrupt) refused to start with an error saying so: its
// start event must carry no error and an Observed refusal. A node that
// started anyway, exited without a clear message, or a damage that could
// not be applied (the test did not happen) is a violation. That the rest
// of the cluster served on meanwhile is what the other checkers show.
func DamagedDataRefused(h *history.History, o Options) Verdict {
	c := newCollector(NameDamagedData, o)
	for _, e := range h.Nemesis {
		if e.Kind != KindStoreCorrupt || e.Phase != history.PhaseStart {
			continue
		}
		c.count("damaged_starts", 1)
		switch {
		case e.Error != "":
			c.add(e.Time, refs(e.Ref()), "%s: %s", e.Detail, e.Error)
		case !strings.HasPrefix(e.Observed, ObservedRefused):
			c.add(e.Time, refs(e.Ref()), "%s: no refusal observed (%q)", e.Detail, e.Observed)
		case !strings.Contains(e.Observed, "damaged") && !strings.Contains(e.Observed, "refusing to start"):
			c.add(e.Time, refs(e.Ref()), "%s: the node's error does not say its data is damaged: %q", e.Detail, e.Observed)
		default:
			c.count("refused", 1)
		}
	}
	if c.v.Counters["damaged_starts"] == 0 {
		return c.skip("no data dir was damaged")
	}
	return c.verdict()
}
