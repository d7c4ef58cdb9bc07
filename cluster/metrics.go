package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's Prometheus series. Gauges read raft at scrape time.
type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	leaderChanges prometheus.Counter
	forwarded     prometheus.Counter
	readRounds    prometheus.Counter
	readsPerRound prometheus.Histogram
	leasesExpired prometheus.Counter
}

func newMetrics(c *Cluster, reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirrorkv_cluster_leader_changes_total",
			Help: "Changes of primary seen by this member."}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirrorkv_cluster_forwarded_total",
			Help: "Writes forwarded by this member to the primary."}),
		readRounds: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirrorkv_cluster_read_index_rounds_total",
			Help: "Leadership confirmations (read-index rounds) run by this member as primary."}),
		readsPerRound: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mirrorkv_cluster_reads_per_round",
			Help:    "Linearizable reads served by one read-index round.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirrorkv_cluster_leases_expired_total",
			Help: "Leases this member, as primary, revoked because their TTL passed without a keep-alive."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{m.leaderChanges, m.forwarded, m.readRounds, m.readsPerRound, m.leasesExpired,
		gauge("mirrorkv_cluster_leases", "Leases the group holds, as this member's store has them.", func() float64 {
			if ls, ok := c.st.(LeaseStore); ok {
				return float64(len(ls.Leases()))
			}
			return 0
		}),
		gauge("mirrorkv_cluster_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			func() float64 { return float64(c.raft.State()) }),
		gauge("mirrorkv_cluster_term", "Current raft term.", func() float64 { return float64(c.raft.CurrentTerm()) }),
		gauge("mirrorkv_cluster_last_index", "Last raft log index.", func() float64 { return float64(c.raft.LastIndex()) }),
		gauge("mirrorkv_cluster_commit_index", "Raft commit index.", func() float64 { return float64(c.raft.CommitIndex()) }),
		gauge("mirrorkv_cluster_applied_index", "Last raft index the store reflects.",
			func() float64 { return float64(c.fsm.appliedIndex()) }),
		gauge("mirrorkv_cluster_apply_lag", "Committed raft entries this member has not applied to its store yet.",
			func() float64 { return float64(c.raft.CommitIndex()) - float64(c.fsm.appliedIndex()) }),
		gauge("mirrorkv_cluster_last_contact_seconds", "Seconds since this member last heard from the primary (0 on the primary).",
			func() float64 {
				if c.raft.State() == raft.Leader {
					return 0
				}
				if t := c.raft.LastContact(); !t.IsZero() {
					return time.Since(t).Seconds()
				}
				return -1
			}),
		gauge("mirrorkv_cluster_is_primary", "1 on the primary.", func() float64 {
			if c.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("mirrorkv_cluster_observations_dropped", "Raft observations dropped by the role observer.",
			func() float64 { return float64(c.observer.GetNumDropped()) }),
	}
	if reg != nil {
		for _, col := range m.collectors {
			if err := reg.Register(col); err != nil {
				c.log.Warn("register cluster metric", "err", err)
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, col := range m.collectors {
		m.reg.Unregister(col)
	}
}
