package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/nemesis"
)

// linkFaults gives every running node the same list of degraded links
// (each node applies those on its side) through the hooks' transport
// fault layer, in both network modes. An empty list heals them.
func (d *driver) linkFaults(ctx context.Context, delay, drop []linkJSON) error {
	req := linksJSON{Peers: map[string][]string{}, Delay: delay, Drop: drop}
	nodes := d.expected()
	for _, n := range nodes {
		req.Peers[n.id] = []string{n.raftAddr}
	}
	var errs []error
	for _, n := range nodes {
		if !n.proc.Running() || n.proc.Paused() {
			continue
		}
		errs = append(errs, d.hooks.post(ctx, n, "/v1/test/links", req))
	}
	return errors.Join(errs...)
}

// degradeLinks applies link-delay or link-drop to every link to and from
// the step's targets.
func (m *driverNemesis) degradeLinks(ctx context.Context, st nemesis.Step) error {
	var links []linkJSON
	members := m.d.memberList()
	for _, t := range st.Targets {
		for _, l := range nemesis.IsolateLinks(t, members) {
			links = append(links, linkJSON{From: l.From, To: l.To, DelayMs: st.Delay.Milliseconds(), Rate: st.DropRate})
		}
	}
	if st.Kind == nemesis.LinkDelay {
		return m.d.linkFaults(ctx, links, nil)
	}
	return m.d.linkFaults(ctx, nil, links)
}

// refuseTimeout bounds how long a node started on a damaged data dir may
// take to refuse.
const refuseTimeout = 20 * time.Second

// corrupt applies store-corrupt to node n: it takes a snapshot (so that
// there is one to damage), kills n, copies its data dir aside, damages the
// copy in place, starts n and waits for it to refuse. It returns what it
// observed ("refused: <the node's error>"); an error when n started
// anyway or the damage could not be made.
func (m *driverNemesis) corrupt(ctx context.Context, st nemesis.Step, n *node) (string, error) {
	d := m.d
	if st.Corrupt == nemesis.CorruptSnapshot {
		if err := d.hooks.post(ctx, n, "/v1/test/snapshot", nil); err != nil {
			return "", fmt.Errorf("snapshot before damaging it: %w", err)
		}
	}
	if err := n.proc.Kill(); err != nil {
		return "", err
	}
	backup := n.dataDir + ".undamaged"
	if err := os.RemoveAll(backup); err != nil {
		return "", err
	}
	if err := copyDir(n.dataDir, backup); err != nil {
		return "", fmt.Errorf("copy the data dir aside: %w", err)
	}
	var err error
	switch st.Corrupt {
	case nemesis.CorruptLogStore:
		err = damageBolt(filepath.Join(n.dataDir, "raft.db"))
	case nemesis.CorruptSnapshot:
		err = damageSnapshots(filepath.Join(n.dataDir, "snapshots"))
	default:
		err = fmt.Errorf("unknown target %q", st.Corrupt)
	}
	if err != nil {
		return "", fmt.Errorf("damage the %s: %w", st.Corrupt, err)
	}
	logStart := fileSize(n.proc.LogPath)
	if err := n.proc.Start(); err != nil {
		return "", err
	}
	select {
	case <-n.proc.Exited():
	case <-time.After(refuseTimeout):
		_ = n.proc.Kill()
		return "", fmt.Errorf("%s was still running %v after it was started on a damaged %s", n.id, refuseTimeout, st.Corrupt)
	case <-ctx.Done():
		_ = n.proc.Kill()
		return "", ctx.Err()
	}
	msg := refusalLine(n.proc.LogPath, logStart)
	if msg == "" {
		msg = fmt.Sprint(n.proc.ExitErr())
	}
	d.logf("%s refused to start on a damaged %s: %s", n.id, st.Corrupt, msg)
	return checker.ObservedRefused + msg, nil
}

// undoCorrupt puts the undamaged copy of n's data dir back and restarts n.
func (m *driverNemesis) undoCorrupt(ctx context.Context, n *node) error {
	backup := n.dataDir + ".undamaged"
	if _, err := os.Stat(backup); err != nil {
		return m.restart(ctx, n)
	}
	if n.proc.Running() {
		_ = n.proc.Kill()
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	if err := os.Rename(backup, n.dataDir); err != nil {
		return err
	}
	return m.restart(ctx, n)
}

// damageBolt overwrites every page of a bolt file but the two meta pages
// with garbage: bolt still opens it, and finds the damage when it reads
// the pages.
func damageBolt(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const metaPages = 8192
	if st.Size() <= metaPages {
		return fmt.Errorf("%s has no data pages", path)
	}
	junk := make([]byte, st.Size()-metaPages)
	for i := range junk {
		junk[i] = byte(i*131 + 17)
	}
	if _, err := f.WriteAt(junk, metaPages); err != nil {
		return err
	}
	return f.Sync()
}

// damageSnapshots flips a byte in the middle of every snapshot's state.
func damageSnapshots(dir string) error {
	states, err := filepath.Glob(filepath.Join(dir, "*", "state.bin"))
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return fmt.Errorf("no snapshot in %s", dir)
	}
	for _, path := range states {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return fmt.Errorf("%s is empty", path)
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// refusalLine returns the agent's fatal error from its log written after
// offset: the line that says it refuses to start, else the last line.
func refusalLine(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var last, refusal string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		last = line
		if strings.Contains(line, "refusing to start") {
			refusal = line
		}
	}
	if refusal != "" {
		return refusal
	}
	return last
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !e.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
