package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The files of a data dir.
const (
	logStoreFile = "raft.db"
	snapshotDir  = "snapshots"
)

// ErrDamagedData marks an error from CheckDataDir or New that found a data
// dir whose files are damaged or inconsistent. A node refuses to start on
// such a dir: restore it from a backup, or remove the member and add a
// fresh node under a new id (docs/leasenode.md, "Damaged data").
var ErrDamagedData = errors.New("damaged data dir")

// DamagedDataError says which file of a data dir is damaged and how.
type DamagedDataError struct {
	Path   string
	Reason string
}

func (e *DamagedDataError) Error() string {
	return fmt.Sprintf("cluster: %s: %s: %s; refusing to start: restore the data dir from a backup, "+
		"or remove this member and add a fresh node under a new id", ErrDamagedData, e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrDamagedData) true.
func (e *DamagedDataError) Is(target error) bool { return target == ErrDamagedData }

func damaged(path, format string, args ...any) error {
	return &DamagedDataError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// DataReport describes a data dir that passed CheckDataDir.
type DataReport struct {
	// FirstIndex and LastIndex are the Raft log's range (0, 0: empty).
	FirstIndex, LastIndex uint64
	// Snapshots are the snapshots on disk, newest first; the newest one's
	// checksum was verified.
	Snapshots []*raft.SnapshotMeta
}

// CheckDataDir verifies the data dir of a stopped node: the bolt log
// store's page structure (every page reachable, none twice), the newest
// snapshot's checksum, that every snapshot's metadata reads, and that the
// log continues the newest snapshot (no entries missing between them). A
// damaged dir gives a *DamagedDataError; a dir in use by a running node
// an error saying so.
//
// bbolt panics, in a goroutine of its own, on some kinds of damaged
// pages, which no caller can recover: run CheckDataDir in a child
// process, as `leasenode agent` does (`leasenode check-data`). New runs
// the checks that cannot panic (snapshots and continuity) itself.
func CheckDataDir(dir string) (DataReport, error) {
	var rep DataReport
	if st, err := os.Stat(dir); err != nil {
		return rep, fmt.Errorf("cluster: data dir: %w", err)
	} else if !st.IsDir() {
		return rep, fmt.Errorf("cluster: data dir %s is not a directory", dir)
	}
	path := filepath.Join(dir, logStoreFile)
	if _, err := os.Stat(path); err == nil {
		if err := checkBolt(path); err != nil {
			return rep, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("cluster: %w", err)
	}
	logs, closeLogs, err := openLogStoreReadOnly(path)
	if err != nil {
		return rep, err
	}
	defer closeLogs()
	var lstore raft.LogStore
	if logs != nil {
		lstore = logs
	}
	rep.Snapshots, err = checkStoredState(dir, lstore)
	if err != nil {
		return rep, err
	}
	if logs != nil {
		rep.FirstIndex, _ = logs.FirstIndex()
		rep.LastIndex, _ = logs.LastIndex()
	}
	return rep, nil
}

// logStoreOpenError says a bolt file bolt refuses to open is damaged.
func logStoreOpenError(path string, err error) error {
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) ||
		errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrInvalidMapping) {
		return damaged(path, "bolt: %v", err)
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("cluster: %s is in use (is another node running on this data dir?)", path)
	}
	return fmt.Errorf("cluster: open log store: %w", err)
}

// checkBolt opens the bolt file read-only and walks every page.
func checkBolt(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return logStoreOpenError(path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		return damaged(path, "bolt: %v", err)
	}
	defer tx.Rollback()
	var problems []string
	for err := range tx.Check() {
		if len(problems) < 3 {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return damaged(path, "bolt: %s", strings.Join(problems, "; "))
	}
	return nil
}

// openLogStoreReadOnly opens the log store without changing it; nil when
// the file does not exist yet.
func openLogStoreReadOnly(path string) (*raftboltdb.BoltStore, func(), error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, func() {}, nil
	}
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		return nil, nil, logStoreOpenError(path, err)
	}
	return s, func() { s.Close() }, nil
}

// checkStoredState checks what New can check without risking a bolt
// panic: every snapshot directory has readable metadata, the newest
// snapshot's state matches its checksum, and the log continues it. logs
// may be nil (no log store yet). It returns the snapshots, newest first.
func checkStoredState(dir string, logs raft.LogStore) ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(filepath.Join(dir, snapshotDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var metas []*raft.SnapshotMeta
	var snaps *raft.FileSnapshotStore
	if err == nil {
		// A store of its own, retaining everything, so that List shows
		// every snapshot on disk whatever the node's retain setting.
		if snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, 1<<30, hclog.NewNullLogger()); err != nil {
			return nil, fmt.Errorf("cluster: open snapshot store: %w", err)
		}
		if metas, err = snaps.List(); err != nil {
			return nil, damaged(filepath.Join(dir, snapshotDir), "%v", err)
		}
	}
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
	}
	for _, e := range entries {
		// raft writes a snapshot under NAME.tmp and renames it when done;
		// a leftover .tmp is an unfinished one it ignores and removes.
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") && !listed[e.Name()] {
			return nil, damaged(filepath.Join(dir, snapshotDir, e.Name()), "snapshot metadata unreadable")
		}
	}
	if len(metas) > 0 {
		newest := metas[0]
		_, rc, err := snaps.Open(newest.ID)
		if err != nil {
			return nil, damaged(filepath.Join(dir, snapshotDir, newest.ID), "newest snapshot: %v", err)
		}
		rc.Close() // Open verified the checksum of the whole state

	}
	if logs == nil {
		return metas, nil
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return nil, damaged(filepath.Join(dir, logStoreFile), "first index: %v", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return nil, damaged(filepath.Join(dir, logStoreFile), "last index: %v", err)
	}
	if last == 0 {
		return metas, nil
	}
	var snapIndex uint64
	if len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	if first > snapIndex+1 {
		what := "no snapshot"
		if len(metas) > 0 {
			what = fmt.Sprintf("the newest snapshot ends at %d", snapIndex)
		}
		return nil, damaged(filepath.Join(dir, logStoreFile), "the log starts at index %d but %s: entries %d..%d are missing",
			first, what, snapIndex+1, first-1)
	}
	return metas, nil
}
