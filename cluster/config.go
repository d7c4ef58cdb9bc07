package cluster

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorkv/mirrorkv/reason"
	"github.com/mirrorkv/mirrorkv/wire"
)

// Log store names for Config.LogStore.
const (
	LogStoreBolt = "bolt" // raft-boltdb: two fsyncs per append
	LogStoreWAL  = "wal"  // raft-wal: one fsync per append
)

// Defaults for Config's zero values. The timeouts give failover well under 2 s on a LAN.
const (
	// DefaultLogStore is wal: one fsync per append against bolt's two. Upstream raft-wal
	// refuses every append for good once a segment rotation failed on a full disk (the
	// member then falls silently behind); the copy in internal/raftwal retries the
	// rotation (TestWALLogStore_RotationFailsThenRecovers, e2e TestFault_DiskFull).
	DefaultLogStore         = LogStoreWAL
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	DefaultElectionTimeout  = 500 * time.Millisecond
	// DefaultLeaderLeaseTimeout is the heartbeat timeout's: a primary steps down only when
	// a follower would start an election anyway. A shorter lease made primaries on a loaded
	// host (scheduling delays of a few hundred milliseconds) step down with nothing wrong,
	// each time failing the writes in flight with an unknown outcome; reads never rely on
	// the lease (they confirm leadership with a read index).
	DefaultLeaderLeaseTimeout = DefaultHeartbeatTimeout
	DefaultCommitTimeout      = 20 * time.Millisecond
	DefaultApplyTimeout       = 10 * time.Second
	DefaultSnapshotThreshold  = 8192
	// DefaultSnapshotInterval is how often raft checks whether SnapshotThreshold entries
	// have accumulated; raft randomises each wait between one and two intervals.
	DefaultSnapshotInterval = 30 * time.Second
	DefaultMaxAppendEntries = 256
	DefaultStatusTimeout    = time.Second
	DefaultSyncLag          = 256
	// DefaultPreferHoldDown is how long a primary keeps the role, and how long the
	// preferred member must be in sync, before the role moves to the preferred member.
	DefaultPreferHoldDown = 3 * time.Second
	// DefaultTransportTimeout bounds a raft RPC's dial and I/O on the member channel.
	DefaultTransportTimeout = 10 * time.Second
	// DefaultMaxPool is the number of idle raft conns kept per peer: heartbeats and
	// replication use separate conns, so fewer than two makes them redial.
	DefaultMaxPool = 4
)

// Config configures one member. The zero value of every field but Name, Dir, Advertise and
// DN is a safe default.
type Config struct {
	Name      string // raft server ID and member name
	Dir       string // raft log, stable store and snapshots
	Advertise string // member address (host:port) the others dial
	ClientURL string // this member's client API URL, shown in the status
	DN        string // canonical subject DN of this member's certificate
	GroupID   string // group name shown in the status

	// Bootstrap makes this member the first of a new group: a one-voter configuration of
	// itself, and its own member record applied once it leads. Ignored when Dir already
	// holds raft state.
	Bootstrap bool
	// Join lists member addresses asked for the current membership at start, so a fresh
	// member can authorise the existing members before the primary contacts it.
	Join []string

	LogStore string // LogStoreWAL or LogStoreBolt; empty: what Dir holds, DefaultLogStore for a new Dir

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	ApplyTimeout       time.Duration // bound of one raft apply (default 10 s)
	StatusTimeout      time.Duration // bound of the per-member Self RPCs in Status (default 1 s)
	TransportTimeout   time.Duration // raft RPC dial and I/O deadline (default 10 s)

	SnapshotThreshold uint64        // log entries between snapshots (default 8192)
	SnapshotInterval  time.Duration // how often the threshold is checked (default 30 s)
	TrailingLogs      uint64        // entries kept after a snapshot (default 1.25 × threshold)
	MaxAppendEntries  int           // entries per append and per FSM batch (default 256, max 1024)
	MaxPool           int           // idle raft conns per peer (default 4)
	// SyncLag is the most entries a member may trail the primary's last index and still
	// count as in sync (default 256).
	SyncLag uint64
	// PreferHoldDown is how long a primary keeps the role, and how long the preferred
	// member must have been in sync, before the primary hands the role to the preferred
	// member; each change of primary within ten hold-downs doubles it, up to 16 times, so
	// that a flaky link cannot make the role flap (default 3 s).
	PreferHoldDown time.Duration

	// TLSHealth reports what an operator must act on in this member's trust material (an
	// expired CRL, say), shown as the member's reason in the status while its role is
	// otherwise healthy; may be nil.
	TLSHealth func() reason.Code

	// CertNotAfter reports this member's certificate expiry for the status; may be nil.
	CertNotAfter func() time.Time
	// TLSExpiries lists what in this member's trust material runs out within 30 days or has
	// run out, earliest first, for its entry in the status; may be nil.
	TLSExpiries func() []wire.Expiry
	// Registerer receives the cluster metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("member name is empty: set a unique name per member"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("raft directory is empty: set the data directory"))
	}
	if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
		errs = append(errs, fmt.Errorf("parse advertise address %q: %w", c.Advertise, err))
	}
	switch c.LogStore {
	case "", LogStoreBolt, LogStoreWAL:
	default:
		errs = append(errs, fmt.Errorf("log store %q unknown: use %q or %q", c.LogStore, LogStoreBolt, LogStoreWAL))
	}
	if c.MaxAppendEntries < 0 || c.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("max append entries %d out of range: use 1..1024", c.MaxAppendEntries))
	}
	for name, d := range map[string]time.Duration{
		"heartbeat timeout": c.HeartbeatTimeout, "election timeout": c.ElectionTimeout,
		"leader lease timeout": c.LeaderLeaseTimeout, "commit timeout": c.CommitTimeout,
		"apply timeout": c.ApplyTimeout, "status timeout": c.StatusTimeout,
		"transport timeout": c.TransportTimeout, "prefer hold-down": c.PreferHoldDown,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative: use a positive duration or 0 for the default", name, d))
		}
	}
	errs = append(errs, c.withDefaults().checkRaftTimeouts()...)
	if c.MaxPool < 0 {
		errs = append(errs, fmt.Errorf("max pool %d is negative", c.MaxPool))
	}
	return errors.Join(errs...)
}

// checkRaftTimeouts checks what raft.ValidateConfig would refuse, on the values in effect
// once the defaults are filled in, so that a bad mix is a config error that says which
// setting to change rather than a failure to start raft.
func (c Config) checkRaftTimeouts() []error {
	var errs []error
	for _, t := range []struct {
		name     string
		d, least time.Duration
	}{
		{"heartbeat timeout", c.HeartbeatTimeout, 5 * time.Millisecond},
		{"election timeout", c.ElectionTimeout, 5 * time.Millisecond},
		{"leader lease timeout", c.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"commit timeout", c.CommitTimeout, time.Millisecond},
	} {
		if t.d > 0 && t.d < t.least {
			errs = append(errs, fmt.Errorf("%s %s is too short: use at least %s", t.name, t.d, t.least))
		}
	}
	if c.HeartbeatTimeout <= 0 || c.ElectionTimeout <= 0 || c.LeaderLeaseTimeout <= 0 {
		return errs // negative: reported as such
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %s exceeds heartbeat timeout %s: lower it", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("election timeout %s is shorter than heartbeat timeout %s: raise it", c.ElectionTimeout, c.HeartbeatTimeout))
	}
	return errs
}

func (c Config) withDefaults() Config {
	c.HeartbeatTimeout = orDefault(c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	c.ElectionTimeout = orDefault(c.ElectionTimeout, max(DefaultElectionTimeout, c.HeartbeatTimeout))
	c.LeaderLeaseTimeout = orDefault(c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	c.CommitTimeout = orDefault(c.CommitTimeout, DefaultCommitTimeout)
	c.ApplyTimeout = orDefault(c.ApplyTimeout, DefaultApplyTimeout)
	c.StatusTimeout = orDefault(c.StatusTimeout, DefaultStatusTimeout)
	c.TransportTimeout = orDefault(c.TransportTimeout, DefaultTransportTimeout)
	c.SnapshotThreshold = orDefault(c.SnapshotThreshold, DefaultSnapshotThreshold)
	c.SnapshotInterval = orDefault(c.SnapshotInterval, DefaultSnapshotInterval)
	c.TrailingLogs = orDefault(c.TrailingLogs, c.SnapshotThreshold+c.SnapshotThreshold/4)
	c.MaxAppendEntries = orDefault(c.MaxAppendEntries, DefaultMaxAppendEntries)
	c.MaxPool = orDefault(c.MaxPool, DefaultMaxPool)
	c.SyncLag = orDefault(c.SyncLag, DefaultSyncLag)
	c.PreferHoldDown = orDefault(c.PreferHoldDown, DefaultPreferHoldDown)
	if c.TLSHealth == nil {
		c.TLSHealth = func() reason.Code { return reason.OK }
	}
	if c.TLSExpiries == nil {
		c.TLSExpiries = func() []wire.Expiry { return nil }
	}
	if c.CertNotAfter == nil {
		c.CertNotAfter = func() time.Time { return time.Time{} }
	}
	return c
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
