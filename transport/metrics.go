package transport

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the HTTP API handler, registered on HandlerOptions.Registry
// (never the global default). Names follow raftlease_<subsystem>_<name>_<unit>.
//
// Per request:
//
//	raftlease_http_requests_total{op,code}            counter; code is "ok" or the error code
//	raftlease_http_request_duration_seconds{op}       histogram; blocking queries include their wait
//
// Read from Backend.Status at scrape time (no scrape, no Status call):
//
//	raftlease_raft_state{state}                       1 for the node's current Raft state, 0 for the others
//	raftlease_raft_is_leader                          1 while this node is the serving leader
//	raftlease_raft_term
//	raftlease_raft_commit_index
//	raftlease_raft_applied_index
//	raftlease_raft_last_index
//	raftlease_raft_members                            servers in the Raft configuration
//	raftlease_store_leases_held                       leases in this replica (live, or expired and not yet removed)
//	raftlease_store_last_token                        the highest fencing token issued
//	raftlease_store_epochs_total                      counter: epoch commands applied since start
//	raftlease_store_expirations_total                 counter: leases expired since start
//	raftlease_store_worst_case_failover_delay_seconds
const (
	metricRequests       = "raftlease_http_requests_total"
	metricRequestSeconds = "raftlease_http_request_duration_seconds"
)

// statusTimeout bounds the Status call of one scrape.
const statusTimeout = 2 * time.Second

// raftStates are the states raftlease_raft_state always reports.
var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// metrics is nil-safe: a handler without a Registry has a nil *metrics.
type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, b Backend, log hclog.Logger) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRequests,
			Help: "HTTP API requests by operation and result code (ok, or the error code).",
		}, []string{"op", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricRequestSeconds,
			Help:    "HTTP API request latency by operation; blocking queries include their wait.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5 ms .. about 65 s
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds, newStatusCollector(b, log)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(op, code string, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.seconds.WithLabelValues(op).Observe(elapsed.Seconds())
}

// statusCollector turns Backend.Status into gauges at scrape time.
type statusCollector struct {
	backend Backend
	log     hclog.Logger

	state, isLeader, term, commit, applied, last, members *prometheus.Desc
	leases, lastToken, epochs, expirations, failover      *prometheus.Desc
}

func newStatusCollector(b Backend, log hclog.Logger) *statusCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statusCollector{
		backend:     b,
		log:         log,
		state:       d("raftlease_raft_state", "1 for the node's current Raft state, 0 for the others.", "state"),
		isLeader:    d("raftlease_raft_is_leader", "1 while this node is the serving Raft leader (epoch applied)."),
		term:        d("raftlease_raft_term", "The node's current Raft term."),
		commit:      d("raftlease_raft_commit_index", "The node's Raft commit index."),
		applied:     d("raftlease_raft_applied_index", "The last Raft index this node applied."),
		last:        d("raftlease_raft_last_index", "The last Raft index in this node's log."),
		members:     d("raftlease_raft_members", "Servers in the Raft configuration."),
		leases:      d("raftlease_store_leases_held", "Leases in this replica's state (live, or expired and not yet removed)."),
		lastToken:   d("raftlease_store_last_token", "The highest fencing token issued."),
		epochs:      d("raftlease_store_epochs_total", "Epoch commands this replica applied since it started."),
		expirations: d("raftlease_store_expirations_total", "Leases this replica expired since it started."),
		failover:    d("raftlease_store_worst_case_failover_delay_seconds", "The most one failover can delay a lease's expiry with this node's timing options."),
	}
}

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.state, s.isLeader, s.term, s.commit, s.applied, s.last, s.members, s.leases, s.lastToken, s.epochs, s.expirations, s.failover} {
		ch <- d
	}
}

// Collect calls Status once. When it fails, the scrape reports none of
// these metrics (and the request metrics as usual).
func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st, err := s.backend.Status(ctx)
	if err != nil {
		s.log.Debug("metrics: status failed", "error", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	known := false
	for _, state := range raftStates {
		v := 0.0
		if state == st.State {
			v, known = 1, true
		}
		gauge(s.state, v, state)
	}
	if !known && st.State != "" {
		gauge(s.state, 1, st.State)
	}
	leader := 0.0
	if st.Serving {
		leader = 1
	}
	gauge(s.isLeader, leader)
	gauge(s.term, float64(st.Term))
	gauge(s.commit, float64(st.CommitIndex))
	gauge(s.applied, float64(st.AppliedIndex))
	gauge(s.last, float64(st.LastIndex))
	gauge(s.members, float64(len(st.Members)))
	gauge(s.leases, float64(st.Leases))
	gauge(s.lastToken, float64(st.LastToken))
	counter(s.epochs, float64(st.Epochs))
	counter(s.expirations, float64(st.Expirations))
	gauge(s.failover, (time.Duration(st.WorstCaseFailoverDelayMs) * time.Millisecond).Seconds())
}
