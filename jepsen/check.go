package jepsen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/jepsen/nemesis"
	"github.com/raftlease/raftlease/jepsen/report"
)

// Results is the content of a run's results.json.
type Results = report.Results

// Files of a run directory.
const (
	HistoryFile         = history.FileName
	ScheduleFile        = nemesis.ScheduleFileName
	ResultsFile         = "results.json"
	TimelineFile        = "timeline.html"
	LinearizabilityFile = "linearizability.html"
	// LogDir holds the node and participant logs (*.log) that the
	// node-logs checker scans.
	LogDir = "logs"
)

// Analyze runs every checker on h with the options its run configuration
// implies, and assembles the results. logFiles are scanned for panics and
// data races. It writes nothing. The Linearization draws porcupine's
// visualisation (nil without register operations).
func Analyze(h *history.History, logFiles []string) (Results, *checker.Linearization) {
	cfg := h.Config()
	verdicts, lin := checker.All(h, logFiles, checker.OptionsFor(cfg))
	r := Results{
		Valid:            checker.Valid(verdicts),
		Config:           cfg,
		StartNs:          h.Start(),
		EndNs:            h.End(),
		Ops:              report.CountOps(h),
		Writes:           report.CountWrites(h),
		Latencies:        map[string]checker.Distribution{},
		Verdicts:         verdicts,
		Recovery:         checker.Recoveries(h),
		HistoryTruncated: h.Truncated,
		Files:            map[string]string{"history": HistoryFile},
	}
	r.DurationNs = r.EndNs - r.StartNs
	if h.Run != nil {
		r.Seed, r.Family, r.GitSHA = h.Run.Seed, h.Run.Family, h.Run.GitSHA
	}
	for k, d := range checker.Latencies(h) {
		r.Latencies[string(k)] = d
	}
	r.Summary = report.Summary(r)
	return r, lin
}

// Report checks h and writes the report files of run directory dir:
// results.json, timeline.html and (with register operations)
// linearizability.html. It scans dir/logs/*.log and includes
// dir/schedule.json when present. The process driver calls it at the end
// of a run with the recorder's history; Check calls it with the history
// read back from dir, with the same results.
func Report(dir string, h *history.History) (Results, error) {
	logs, err := LogFiles(dir)
	if err != nil {
		return Results{}, err
	}
	r, lin := Analyze(h, logs)
	var errs []error
	if s, err := nemesis.ReadFile(filepath.Join(dir, ScheduleFile)); err == nil {
		r.Schedule = &s
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if lin != nil {
		if err := lin.WriteFile(filepath.Join(dir, LinearizabilityFile)); err != nil {
			errs = append(errs, fmt.Errorf("jepsen: %s: %w", LinearizabilityFile, err))
		} else {
			r.Files["linearizability"] = LinearizabilityFile
		}
	}
	r.Files["timeline"] = TimelineFile
	if err := report.WriteTimelineFile(filepath.Join(dir, TimelineFile), h, r); err != nil {
		errs = append(errs, err)
	}
	r.Files["results"] = ResultsFile
	if err := report.WriteResults(filepath.Join(dir, ResultsFile), r); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

// Check replays the run in dir offline: it reads its history files, runs
// every checker and rewrites the report files (results.json,
// timeline.html, linearizability.html). `jepsen check DIR`
// calls it.
func Check(dir string) (Results, error) {
	h, err := history.ReadDir(dir)
	if err != nil {
		return Results{}, err
	}
	return Report(dir, h)
}

// LogFiles returns the log files of run directory dir (dir/logs/*.log),
// sorted; none when the directory does not exist.
func LogFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, LogDir, "*.log"))
	if err != nil {
		return nil, fmt.Errorf("jepsen: %w", err)
	}
	slices.Sort(files)
	return files, nil
}

// GitSHA returns `git rev-parse HEAD` in the current directory, or "" when
// git or the repository is not there. Record it in the RunInfo at the
// start of a run.
func GitSHA(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
