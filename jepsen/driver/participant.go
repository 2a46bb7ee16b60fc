package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/raftlease/raftlease"
	"github.com/raftlease/raftlease/client"
	"github.com/raftlease/raftlease/elector"
	"github.com/raftlease/raftlease/internal/skewclock"
	"github.com/raftlease/raftlease/jepsen/fenced"
	"github.com/raftlease/raftlease/jepsen/history"
	"github.com/raftlease/raftlease/redisbridge"
)

// ParticipantConfig configures one elector participant process (`jepsen
// participant`).
type ParticipantConfig struct {
	// ID is the participant's id and its holder id ("p1").
	ID string
	// Dir is the run directory; the participant writes its history there.
	Dir string
	// Incarnation numbers the starts of this participant from 1; each
	// writes its own history file and process id (p1, p1.r2, …).
	Incarnation int
	// Endpoints are the cluster's HTTP API addresses.
	Endpoints []string
	// RedisAddr, or RedisSentinels with RedisMaster, put the elector on
	// the Redis bridge instead of the cluster (the Redis comparison,
	// RunRedis): a standalone server, or the master the Sentinels name.
	RedisAddr      string
	RedisSentinels []string
	RedisMaster    string
	// RegisterURL is the fenced register's base URL.
	RegisterURL string
	// Name is the elector lease; TTL its duration (the FastFailover
	// profile scaled to it).
	Name string
	TTL  time.Duration
	// MaxDrift is the elector's drift bound.
	MaxDrift float64
	// ClockRate runs the elector's clock at this rate (1 or 0: real time).
	// A rate beyond 1 ± MaxDrift breaks the elector's assumption (UNSAFE).
	ClockRate float64
	// WriteInterval is the pause between two rounds of writes while
	// leading.
	WriteInterval time.Duration
}

// processName is the history process of incarnation k of participant id.
func processName(id string, k int) string {
	if k <= 1 {
		return id
	}
	return id + ".r" + strconv.Itoa(k)
}

// participantFile is the history file of incarnation k of participant id.
func participantFile(dir, id string, k int) string {
	return filepath.Join(dir, history.ParticipantFileName(processName(id, k)))
}

// seqBase keeps the event numbers of incarnations apart.
func seqBase(k int) int64 { return int64(max(k, 1)-1) * 1_000_000 }

// RunParticipant runs one elector participant until ctx ends: it campaigns
// for cfg.Name through the Go client (every store call recorded), records
// gained and lost events, and while leading writes to the fenced register
// every WriteInterval, a fenced write with its token and an unfenced
// control write. The write loop checks its leadership, then sleeps, then
// writes: like real leader work, it acts on a check made a moment ago, so
// a process paused in between writes late (which fencing must reject).
func RunParticipant(ctx context.Context, cfg ParticipantConfig) error {
	if cfg.ID == "" || cfg.Dir == "" || (len(cfg.Endpoints) == 0 && !cfg.onRedis()) || cfg.RegisterURL == "" || cfg.Name == "" {
		return errors.New("participant: --id, --dir, --endpoints (or --redis, or --redis-sentinels), --register and --name are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 2 * time.Second
	}
	if cfg.WriteInterval <= 0 {
		cfg.WriteInterval = 30 * time.Millisecond
	}
	cfg.Incarnation = max(cfg.Incarnation, 1)
	logger := hclog.New(&hclog.LoggerOptions{Name: "participant", Level: hclog.Info, Output: os.Stderr,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00"}).With("id", cfg.ID)
	rec, err := history.Create(participantFile(cfg.Dir, cfg.ID, cfg.Incarnation))
	if err != nil {
		return err
	}
	defer rec.Close()
	opts := elector.FastFailover()
	scale := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(cfg.TTL) / float64(opts.LeaseDuration))
	}
	opts.RenewInterval, opts.RetryInterval = scale(opts.RenewInterval), scale(opts.RetryInterval)
	opts.OperationTimeout, opts.SafetyMargin = scale(opts.OperationTimeout), scale(opts.SafetyMargin)
	opts.LeaseDuration = cfg.TTL
	if cfg.MaxDrift > 0 {
		opts.MaxClockDrift = cfg.MaxDrift
	}
	opts.Name, opts.Holder, opts.ReleaseOnStop = cfg.Name, cfg.ID, true
	clock := skewclock.New()
	clock.SetRate(cfg.ClockRate)
	opts.Clock = clock
	opts.Logger = logger.Named("elector")

	c, err := participantStore(cfg, opts, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	store := &history.RecordingStore{Store: c, Rec: rec, Process: processName(cfg.ID, cfg.Incarnation), Workload: history.WorkloadElector}
	reg := &fenced.Client{URL: cfg.RegisterURL, HTTP: &http.Client{Timeout: time.Second}}
	seq := seqBase(cfg.Incarnation)
	event := func(kind string, token uint64, reason string) {
		seq++
		rec.Participant(history.ParticipantEvent{Participant: cfg.ID, Seq: seq, Name: cfg.Name, Event: kind, Token: token, Reason: reason})
	}
	var writeSeq int64
	opts.OnElected = func(lctx context.Context) {
		token, _ := elector.TokenFromContext(lctx)
		event(history.Gained, token, "elected")
		logger.Info("leading", "token", token)
		for lctx.Err() == nil {
			time.Sleep(cfg.WriteInterval) // check, then act: see RunParticipant
			writeSeq++
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if _, err := reg.Write(wctx, fenced.WriteRequest{Writer: cfg.ID, Token: token, Fenced: true, Seq: writeSeq}); err != nil {
				logger.Warn("fenced write failed", "error", err)
			}
			if _, err := reg.Write(wctx, fenced.WriteRequest{Writer: cfg.ID, Token: token, Fenced: false, Seq: writeSeq}); err != nil {
				logger.Warn("unfenced write failed", "error", err)
			}
			cancel()
		}
	}
	e, err := elector.New(store, opts)
	if err != nil {
		return err
	}
	changes := e.Subscribe(context.Background())
	if err := e.Start(); err != nil {
		return err
	}
	logger.Info("campaigning", "lease", cfg.Name, "ttl", cfg.TTL, "clock_rate", clock.Rate(), "safe_window", opts.SafeWindow())
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := e.Stop(sctx)
			cancel()
			for ch := range changes {
				if ch.Lost {
					event(history.Lost, ch.Previous.Token, ch.Reason)
				}
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				logger.Warn("stop", "error", err)
			}
			return rec.Close()
		case ch, ok := <-changes:
			if !ok {
				return fmt.Errorf("participant: elector stopped: %w", e.Stop(context.Background()))
			}
			if ch.Lost {
				event(history.Lost, ch.Previous.Token, ch.Reason)
				logger.Info("lost", "token", ch.Previous.Token, "reason", ch.Reason)
			}
		}
	}
}

// onRedis reports whether the participant runs on the Redis bridge.
func (cfg ParticipantConfig) onRedis() bool {
	return cfg.RedisAddr != "" || len(cfg.RedisSentinels) > 0 || cfg.RedisMaster != ""
}

// closingStore is a store the participant closes when it stops.
type closingStore interface {
	raftlease.Store
	Close() error
}

// participantStore is the store the participant's elector runs on: the Go
// client over the cluster's endpoints, or the Redis bridge with the
// elector's operation timeout.
func participantStore(cfg ParticipantConfig, opts elector.Options, logger hclog.Logger) (closingStore, error) {
	if !cfg.onRedis() {
		return client.New(client.Options{Endpoints: cfg.Endpoints, RequestTimeout: opts.OperationTimeout, OperationTimeout: opts.OperationTimeout, Logger: logger})
	}
	if len(cfg.Endpoints) > 0 {
		return nil, errors.New("participant: give --endpoints or a Redis store, not both")
	}
	return redisbridge.New(redisbridge.Options{Addr: cfg.RedisAddr, MasterName: cfg.RedisMaster, SentinelAddrs: cfg.RedisSentinels,
		OperationTimeout: opts.OperationTimeout, Logger: logger.Named("redis")})
}

// completeKilled appends, to the history file of a participant process
// that was killed, an ambiguous completion (at time t) for every operation
// it left pending, and a lost event when it died leading, after cutting a
// torn last line. A killed client's
// operations are indeterminate, as Jepsen records them; without this the
// hang checker could not tell them from hung ones.
func completeKilled(path string, t int64) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	if i := strings.LastIndexByte(string(data), '\n'); i < len(data)-1 {
		data = data[:i+1]
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return 0, err
		}
	}
	h, err := history.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for _, op := range h.Ops {
		if !op.Pending() {
			continue
		}
		line, err := json.Marshal(history.Record{Type: history.TypeComplete, Completion: &history.Completion{
			Process: op.Process, ID: op.ID, Complete: max(t, op.Invoke), Outcome: history.Ambiguous,
			Code: history.CodeError, Error: "participant process killed",
		}})
		if err != nil {
			return n, err
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			return n, err
		}
		n++
	}
	// A leader that dies stops leading: close its term for the timeline.
	if k := len(h.Participants); k > 0 && h.Participants[k-1].Event == history.Gained {
		last := h.Participants[k-1]
		line, err := json.Marshal(history.Record{Type: history.TypeParticipant, Participant: &history.ParticipantEvent{
			Participant: last.Participant, Seq: last.Seq + 1, Name: last.Name, Event: history.Lost, Token: last.Token,
			Reason: "process killed", Time: max(t, last.Time),
		}})
		if err != nil {
			return n, err
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			return n, err
		}
	}
	return n, f.Close()
}
