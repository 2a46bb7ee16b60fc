package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// driverNemesis applies the steps of a schedule to the real processes: it
// implements nemesis.Nemesis.
type driverNemesis struct {
	d      *driver
	regURL string
	// restoreArmed are the nodes armed to crash in the middle of
	// restoring a snapshot they are sent when their partition heals.
	restoreArmed []*node
}

var _ nemesis.Nemesis = (*driverNemesis)(nil)

// view resolves what the step's selector needs: the leader (also for a
// follower), the holder.
func (m *driverNemesis) view(ctx context.Context, st nemesis.Step) nemesis.View {
	v := nemesis.View{Members: m.d.memberList()}
	switch st.Select {
	case nemesis.SelectLeader, nemesis.SelectFollower:
		v.Leader = m.d.waitLeader(ctx, 5*time.Second)
	case nemesis.SelectHolder:
		v.Holder = m.d.holder(ctx)
	}
	return v
}

// Start implements nemesis.Nemesis.
func (m *driverNemesis) Start(ctx context.Context, st nemesis.Step) (nemesis.Step, error) {
	d := m.d
	if st.Kind == nemesis.Heal {
		err := m.healAll(ctx)
		d.count(err)
		return st, err
	}
	resolved, err := nemesis.Resolve(st, m.view(ctx, st))
	if err != nil {
		d.count(err)
		return resolved, err
	}
	if resolved.Kind == nemesis.StoreCorrupt {
		err = m.corruptTargets(ctx, &resolved)
	} else {
		err = m.start(ctx, resolved)
	}
	d.count(err)
	d.logf("nemesis start %s%s", resolved, errSuffix(err))
	return resolved, err
}

func (d *driver) count(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stepsApplied++
	if err != nil {
		d.stepErrors++
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func (m *driverNemesis) nodes(ids []string) ([]*node, error) {
	var out []*node
	for _, id := range ids {
		n := m.d.byID[id]
		if n == nil {
			return nil, fmt.Errorf("no node %q", id)
		}
		out = append(out, n)
	}
	return out, nil
}

func (m *driverNemesis) start(ctx context.Context, st nemesis.Step) error {
	d := m.d
	k := st.Kind
	switch {
	case k.IsPartition():
		if err := d.net.cut(ctx, st.Links); err != nil {
			return err
		}
		return m.armRestoreCrash(ctx, st)
	case k == nemesis.KillHolder || k == nemesis.PauseParticipant || k == nemesis.PauseHolder:
		var errs []error
		for _, id := range st.Targets {
			p := d.participant(id)
			if p == nil {
				errs = append(errs, fmt.Errorf("no participant %q", id))
				continue
			}
			if k == nemesis.KillHolder {
				errs = append(errs, d.killParticipant(p))
			} else {
				errs = append(errs, p.proc.Pause())
			}
		}
		return errors.Join(errs...)
	}
	targets, err := m.nodes(st.Targets)
	if err != nil {
		return err
	}
	var errs []error
	switch k {
	case nemesis.KillRandom, nemesis.KillLeader, nemesis.KillMajority:
		for _, n := range targets {
			errs = append(errs, m.kill(ctx, st, n))
		}
	case nemesis.PauseNode, nemesis.PauseLeader:
		for _, n := range targets {
			errs = append(errs, n.proc.Pause())
		}
	case nemesis.ClockJump:
		for _, n := range targets {
			errs = append(errs, d.hooks.post(ctx, n, "/v1/test/clock", clockJSON{Rate: 1, WallOffsetMs: st.ClockOffset.Milliseconds()}))
		}
	case nemesis.ClockSkew:
		for _, n := range targets {
			errs = append(errs, d.hooks.post(ctx, n, "/v1/test/clock", clockJSON{Rate: st.ClockRate}))
		}
	case nemesis.StoreSlow:
		for _, n := range targets {
			errs = append(errs, d.hooks.post(ctx, n, "/v1/test/logstore", logStoreJSON{DelayMs: st.Delay.Milliseconds()}))
		}
	case nemesis.StoreFail:
		for _, n := range targets {
			errs = append(errs, d.hooks.post(ctx, n, "/v1/test/logstore", logStoreJSON{ErrorRate: st.ErrorRate}))
		}
	case nemesis.LinkDelay, nemesis.LinkDrop:
		errs = append(errs, m.degradeLinks(ctx, st))
	case nemesis.TermLeader:
		for _, n := range targets {
			if graceful, err := n.proc.Term(15 * time.Second); err != nil || !graceful {
				errs = append(errs, fmt.Errorf("%s did not exit within 15s of SIGTERM (goroutines dumped to its log by SIGQUIT)%s", n.id, errSuffix(err)))
			}
		}
	case nemesis.RollingRestart:
		each := st.Hold / time.Duration(max(len(targets), 1))
		for _, n := range targets {
			begin := time.Now()
			if graceful, err := n.proc.Term(15 * time.Second); err != nil || !graceful {
				errs = append(errs, fmt.Errorf("%s did not exit within 15s of SIGTERM (goroutines dumped to its log by SIGQUIT)%s", n.id, errSuffix(err)))
			}
			errs = append(errs, m.restart(ctx, n))
			m.waitUp(ctx, n, each)
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(begin.Add(each))):
			}
		}
	case nemesis.MemberAdd:
		for _, n := range targets {
			errs = append(errs, m.addMember(ctx, n))
		}
	case nemesis.MemberRemove, nemesis.MemberRemoveLeader:
		for _, n := range targets {
			errs = append(errs, m.removeMember(ctx, n))
		}
	case nemesis.MemberReplace:
		for _, n := range targets {
			errs = append(errs, m.replaceMember(ctx, n, st.NewID))
		}
	default:
		return fmt.Errorf("driver: kind %s not implemented", k)
	}
	return errors.Join(errs...)
}

// armRestoreCrash: in the snapshot family (few trailing logs), one
// partition-one in two (by Pick) also arms the isolated node to crash in
// the middle of restoring a snapshot, which the leader sends it once the
// partition heals, because it fell too far behind.
func (m *driverNemesis) armRestoreCrash(ctx context.Context, st nemesis.Step) error {
	if m.d.sched.TrailingLogs == 0 || st.Kind != nemesis.PartitionOne || st.Pick%2 != 0 {
		return nil
	}
	targets, err := m.nodes(st.Targets)
	if err != nil {
		return err
	}
	for _, n := range targets {
		if err := m.d.hooks.post(ctx, n, "/v1/test/crash", crashJSON{Point: "snapshot-restore"}); err != nil {
			return err
		}
		m.restoreArmed = append(m.restoreArmed, n)
	}
	return nil
}

// awaitRestoreCrash, after the heal of an armed partition, watches each
// armed node for a while (the leader sends the snapshot once its
// replication backoff ends): when it crashes mid-restore it is restarted
// (the new process restores the snapshot it had persisted); when it was
// not sent one, it is disarmed. It does not hold up the schedule.
func (m *driverNemesis) awaitRestoreCrash(ctx context.Context) error {
	armed := m.restoreArmed
	m.restoreArmed = nil
	for _, n := range armed {
		exited := n.proc.Exited()
		go func() {
			select {
			case <-exited:
				if !crashed(n.proc.ExitErr()) {
					return // stopped by someone else (a later step, the end of the run)
				}
				m.d.logf("%s crashed restoring a snapshot (%v): restarting it", n.id, n.proc.ExitErr())
				if err := m.restart(ctx, n); err != nil {
					m.d.logf("restart %s: %v", n.id, err)
				}
			case <-time.After(restoreWatch):
				m.d.logf("%s was not sent a snapshot within %v of the heal: crash point disarmed", n.id, restoreWatch)
				_ = m.d.hooks.post(ctx, n, "/v1/test/crash", crashJSON{})
			case <-ctx.Done():
			}
		}()
	}
	return nil
}

// crashExitStatus is the exit status of a node at a crash point of the
// unsafe test hooks (cluster.CrashExitStatus; jepsen does not import
// cluster).
const crashExitStatus = 86

func crashed(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == crashExitStatus
}

// restoreWatch is how long awaitRestoreCrash watches an armed node.
const restoreWatch = 15 * time.Second

// corruptTargets applies store-corrupt to each target and notes what
// was observed in the step.
func (m *driverNemesis) corruptTargets(ctx context.Context, st *nemesis.Step) error {
	targets, err := m.nodes(st.Targets)
	if err != nil {
		return err
	}
	var errs []error
	var seen []string
	for _, n := range targets {
		observed, err := m.corrupt(ctx, *st, n)
		errs = append(errs, err)
		if observed != "" {
			seen = append(seen, observed)
		}
	}
	st.Observed = strings.Join(seen, "; ")
	return errors.Join(errs...)
}

// kill kills n: with SIGKILL, or, for some kill-random steps (chosen by
// Pick), at a crash point of the unsafe test hooks: after or before
// applying an entry, or (snapshot family) in the middle of persisting a
// snapshot it is told to take. A crash point that is not reached within
// 3 s falls back to SIGKILL.
func (m *driverNemesis) kill(ctx context.Context, st nemesis.Step, n *node) error {
	d := m.d
	if st.Kind == nemesis.KillRandom && st.Pick%3 == 0 {
		point, after := "after-apply", int(st.Pick/3%20)
		if (st.Pick/3)%2 == 1 {
			point = "before-apply"
		}
		if d.sched.SnapshotThreshold > 0 {
			point, after = "snapshot-persist", 0
		}
		if err := d.hooks.post(ctx, n, "/v1/test/crash", crashJSON{Point: point, After: after}); err == nil {
			if point == "snapshot-persist" {
				go d.hooks.post(context.Background(), n, "/v1/test/snapshot", nil)
			}
			select {
			case <-n.proc.Exited():
				d.logf("%s exited at crash point %s (%v)", n.id, point, n.proc.ExitErr())
				return nil
			case <-time.After(3 * time.Second):
				d.logf("%s did not reach crash point %s within 3s: SIGKILL", n.id, point)
				_ = d.hooks.post(ctx, n, "/v1/test/crash", crashJSON{})
			}
		}
	}
	return n.proc.Kill()
}

// restart starts n again if it is not running, and in hooks mode gives it
// the current link cuts.
func (m *driverNemesis) restart(ctx context.Context, n *node) error {
	if n.proc.Running() {
		return nil
	}
	if err := n.proc.Start(); err != nil {
		return err
	}
	if h, ok := m.d.net.(*hooksNet); ok {
		m.waitUp(ctx, n, 5*time.Second)
		return h.reapply(ctx)
	}
	return nil
}

// waitUp waits up to timeout for n's hooks to answer.
func (m *driverNemesis) waitUp(ctx context.Context, n *node, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return waitFor(ctx, func() bool {
		sctx, c := context.WithTimeout(ctx, 300*time.Millisecond)
		defer c()
		_, err := m.d.hooks.status(sctx, n)
		return err == nil
	})
}

// Stop implements nemesis.Nemesis.
func (m *driverNemesis) Stop(ctx context.Context, st nemesis.Step) error {
	err := m.stop(ctx, st)
	m.d.logf("nemesis stop %s%s", st, errSuffix(err))
	return err
}

func (m *driverNemesis) stop(ctx context.Context, st nemesis.Step) error {
	d := m.d
	k := st.Kind
	switch {
	case k == nemesis.Heal || k.IsMembership() || k == nemesis.RollingRestart:
		return nil
	case k.IsPartition():
		if err := d.net.cut(ctx, nil); err != nil {
			return err
		}
		return m.awaitRestoreCrash(ctx)
	case k == nemesis.LinkDelay || k == nemesis.LinkDrop:
		return d.linkFaults(ctx, nil, nil)
	case k == nemesis.KillHolder || k == nemesis.PauseParticipant || k == nemesis.PauseHolder:
		var errs []error
		for _, id := range st.Targets {
			p := d.participant(id)
			if p == nil {
				continue
			}
			if k == nemesis.KillHolder {
				if !p.proc.Running() {
					errs = append(errs, d.startParticipant(p, m.regURL))
				}
			} else {
				p.proc.Resume()
			}
		}
		return errors.Join(errs...)
	}
	targets, err := m.nodes(st.Targets)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range targets {
		switch k {
		case nemesis.KillRandom, nemesis.KillLeader, nemesis.KillMajority, nemesis.TermLeader:
			errs = append(errs, m.restart(ctx, n))
		case nemesis.StoreCorrupt:
			errs = append(errs, m.undoCorrupt(ctx, n))
		case nemesis.PauseNode, nemesis.PauseLeader:
			n.proc.Resume()
		case nemesis.ClockJump, nemesis.ClockSkew:
			if n.proc.Running() {
				errs = append(errs, d.hooks.post(ctx, n, "/v1/test/clock", clockJSON{Rate: 1}))
			}
		case nemesis.StoreSlow, nemesis.StoreFail:
			if n.proc.Running() {
				errs = append(errs, d.hooks.post(ctx, n, "/v1/test/logstore", logStoreJSON{}))
			}
		}
	}
	return errors.Join(errs...)
}

// healAll undoes every fault: links healed, processes continued or
// restarted, clocks and log stores reset, crash points disarmed.
func (m *driverNemesis) healAll(ctx context.Context) error {
	d := m.d
	var errs []error
	for _, n := range d.expected() {
		n.proc.Resume()
		if !n.proc.Running() {
			errs = append(errs, m.restart(ctx, n))
		}
	}
	errs = append(errs, d.net.cut(ctx, nil))
	if _, ok := d.net.(*hooksNet); !ok {
		errs = append(errs, d.linkFaults(ctx, nil, nil)) // hooks mode: the empty cut did it
	}
	for _, n := range d.expected() {
		if !m.waitUp(ctx, n, 5*time.Second) {
			errs = append(errs, fmt.Errorf("%s does not answer after the heal", n.id))
			continue
		}
		errs = append(errs,
			d.hooks.post(ctx, n, "/v1/test/clock", clockJSON{Rate: 1}),
			d.hooks.post(ctx, n, "/v1/test/logstore", logStoreJSON{}),
			d.hooks.post(ctx, n, "/v1/test/crash", crashJSON{}))
	}
	for _, p := range d.participants {
		p.proc.Resume()
		if !p.proc.Running() {
			errs = append(errs, d.startParticipant(p, m.regURL))
		}
	}
	if d.waitLeader(ctx, 10*time.Second) == "" {
		errs = append(errs, errors.New("no leader 10s after the heal"))
	}
	err := errors.Join(errs...)
	d.logf("nemesis heal%s", errSuffix(err))
	return err
}

// --- membership ---

// addMember starts spare n, joining through the current members, and waits
// until it is a member.
func (m *driverNemesis) addMember(ctx context.Context, n *node) error {
	d := m.d
	var join []string
	for _, id := range d.memberList() {
		join = append(join, d.byID[id].httpAddr)
	}
	d.mu.Lock()
	n.joined, n.removed = true, false
	d.mu.Unlock()
	n.proc.Args = d.nodeArgs(n, false, join)
	if err := n.proc.Start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok := waitFor(wctx, func() bool {
		st, err := d.anyClient().Status(wctx)
		if err != nil {
			return false
		}
		for _, mem := range st.Members {
			if mem.ID == n.id && mem.Voter {
				return true
			}
		}
		return false
	})
	d.mu.Lock()
	d.members = append(d.members, n.id)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s did not become a voter within 30s", n.id)
	}
	return nil
}

// removeMember removes n from the configuration, then stops its process.
func (m *driverNemesis) removeMember(ctx context.Context, n *node) error {
	d := m.d
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var err error
	ok := waitFor(wctx, func() bool {
		rctx, c := context.WithTimeout(wctx, 5*time.Second)
		defer c()
		err = d.anyClient().RemoveMember(rctx, n.id)
		return err == nil
	})
	d.mu.Lock()
	d.members = slices.DeleteFunc(d.members, func(id string) bool { return id == n.id })
	n.removed = true
	d.mu.Unlock()
	n.proc.Term(10 * time.Second)
	if !ok {
		return fmt.Errorf("remove %s: %v", n.id, err)
	}
	return nil
}

// replaceMember kills n, removes it, wipes its data and brings in spare
// newID (a new identity on a clean data dir) in its place.
func (m *driverNemesis) replaceMember(ctx context.Context, n *node, newID string) error {
	d := m.d
	spare := d.byID[newID]
	if spare == nil {
		return fmt.Errorf("no spare %q", newID)
	}
	if err := n.proc.Kill(); err != nil {
		return err
	}
	if err := m.removeMember(ctx, n); err != nil {
		return err
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	return m.addMember(ctx, spare)
}
