package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The combined nemesis: one seeded random schedule that mixes every fault the harness can
// inject, under the scenarios' workload, ending each round as they do (heal, converge,
// porcupine, lost acknowledged writes). The seed drives the schedule: which fault, on which
// member, for how long; a run logs it first and -mirrorkv.nemesis.seed replays it.
//
//	go test -run 'TestNemesis' ./e2e/ -v                                        # CI form
//	go test -run 'TestNemesis$' ./e2e/ -v -mirrorkv.nemesis.seed N              # replay seed N
//	go test -run 'TestNemesis$' ./e2e/ -v -timeout 0 -mirrorkv.soak.nemesis 30m \
//	    -mirrorkv.history-dir /tmp/mirrorkv-nemesis                             # soak
//	go run ./e2e/soaksummary /tmp/mirrorkv-nemesis/nemesis                      # its figures

var (
	nemesisSeed = flag.Uint64("mirrorkv.nemesis.seed", 0,
		"replay the combined nemesis with this seed (0: the CI seed, or fresh seeds under -mirrorkv.soak.nemesis)")
	nemesisSoak = flag.Duration("mirrorkv.soak.nemesis", 0,
		"run combined-nemesis groups with fresh seeds until this long has passed, one summary line per history in -mirrorkv.history-dir/nemesis")
)

const (
	// ciNemesisSeed is the CI form's seed. Its three rounds deal twelve faults, so every
	// kind comes up at least once.
	ciNemesisSeed = 7
	// nemesisRounds is how many histories one seed's group records; nemesisSteps how many
	// faults one round injects, one after the other.
	nemesisRounds = 3
	nemesisSteps  = 4
	// maxMembers bounds a group that grows: 3 failover members and two grown ones.
	maxMembers = 5
)

// faultKind names one kind of fault of the schedule.
type faultKind string

const (
	faultKill        faultKind = "kill"         // kill -9 any member, restart it
	faultPause       faultKind = "pause"        // SIGSTOP any member, SIGCONT
	faultPartition   faultKind = "partition"    // cut one member off both ways
	faultOneWay      faultKind = "one-way"      // a member hears nobody, or nobody hears it
	faultBridge      faultKind = "bridge"       // the primary sees both sides, the sides not each other
	faultTransfer    faultKind = "transfer"     // leadership moved to another failover member
	faultRemoveReadd faultKind = "remove-readd" // a non-primary removed, wiped, joined and added again
	faultGrow        faultKind = "grow"         // an async member added, then promoted
	faultRenew       faultKind = "renew"        // a member's leaf renewed over the admin API
	faultSlow        faultKind = "slow"         // every link of a member delayed
)

var faultKinds = []faultKind{faultKill, faultPause, faultPartition, faultOneWay, faultBridge,
	faultTransfer, faultRemoveReadd, faultGrow, faultRenew, faultSlow}

// nemesisSummary is one history's line in summary.jsonl.
type nemesisSummary struct {
	Seed      uint64            `json:"seed"`
	Round     int               `json:"round"`
	Faults    map[faultKind]int `json:"faults"`
	Ops       int               `json:"ops"`
	Checked   int               `json:"checked"`
	Unknown   int64             `json:"unknown"`
	Anomalies int               `json:"anomalies"`
	Undecided bool              `json:"undecided"`
	Lost      int               `json:"lostAckedWrites"`
	// ConvergeSeconds is from the start of healing until every member held the same data.
	ConvergeSeconds float64 `json:"convergeSeconds"`
	Seconds         float64 `json:"seconds"`
}

func TestNemesis(t *testing.T) {
	switch {
	case *nemesisSeed != 0:
		runNemesisSeed(t, *nemesisSeed, nil)
	case *nemesisSoak > 0:
		start := time.Now()
		dir := nemesisDir(t)
		t.Logf("nemesis soak for %s; summary lines in %s", *nemesisSoak, filepath.Join(dir, "summary.jsonl"))
		for time.Since(start) < *nemesisSoak && !t.Failed() {
			runNemesisSeed(t, rand.Uint64N(1<<53), nil)
		}
	default:
		runNemesisSeed(t, ciNemesisSeed, nil)
	}
}

// TestNemesis_StaleReadsRejected runs the CI seed's schedule with the wrong read path: gets
// answered from a member's own copy (?stale=true) and recorded as linearizable. The checker
// must reject a history of it, or it could not be trusted to accept the others.
func TestNemesis_StaleReadsRejected(t *testing.T) {
	seed := uint64(ciNemesisSeed)
	if *nemesisSeed != 0 {
		seed = *nemesisSeed
	}
	rejected := false
	runNemesisSeed(t, seed, func(s nemesisSummary) bool {
		rejected = rejected || s.Anomalies > 0
		return !rejected
	})
	if !rejected {
		t.Errorf("seed %d: the checker accepted every history whose reads were stale reads recorded as linearizable", seed)
	}
}

// runNemesisSeed starts a group and runs seed's rounds on it. With teeth set, the workload
// reads through the wrong path, a history is expected to fail the check, and teeth is told
// of each round's summary and says whether to go on.
func runNemesisSeed(t *testing.T, seed uint64, teeth func(nemesisSummary) bool) {
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		t.Logf("nemesis seed %d (replay: -run 'TestNemesis$' -mirrorkv.nemesis.seed %d)", seed, seed)
		h := startHarness(t, harnessOptions{failover: 3, seed: seed, spare: maxMembers - 3})
		if teeth != nil {
			h.staleFrom = append([]*localgroup.Member(nil), h.g.Members...)
		}
		n := &nemesis{h: h, seed: seed, rng: rand.New(rand.NewPCG(seed, 1))}
		for round := range nemesisRounds {
			s := n.round(round, teeth != nil)
			if teeth != nil && !teeth(s) || t.Failed() {
				return
			}
		}
	})
}

// nemesis runs one group's schedule and logs each fault's injection and healing with the
// time, and the offset into the round's history.
type nemesis struct {
	h      *harness
	seed   uint64
	rng    *rand.Rand
	deck   []faultKind // kinds still to deal
	events []string
	start  time.Time // of the round: the history's clock starts with it
	faults map[faultKind]int
	grown  []*localgroup.Member // added this round, given clients once the workload stops
	out    string               // where reports and fault logs go, once one is written
}

func (n *nemesis) dir() string {
	if n.out == "" {
		n.out = nemesisDir(n.h.t)
	}
	return n.out
}

func (n *nemesis) logf(format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("%s +%7.3fs %s", now.UTC().Format("15:04:05.000"), now.Sub(n.start).Seconds(), fmt.Sprintf(format, args...))
	n.events = append(n.events, line)
	n.h.t.Log("nemesis: " + line)
}

// round runs nemesisSteps faults under the workload, heals, and checks the history.
func (n *nemesis) round(round int, wrongReads bool) nemesisSummary {
	h, t := n.h, n.h.t
	n.start, n.events, n.faults, n.grown = time.Now(), nil, map[faultKind]int{}, nil
	w := h.startWorkload(round)
	n.logf("round %d of seed %d: workload on %s", round, n.seed, strings.Join(w.keys, " "))
	hold(time.Second)
	for step := range nemesisSteps {
		kind := n.pick()
		n.faults[kind]++
		n.logf("step %d: %s", step, kind)
		n.inject(kind)
		hold(time.Duration(300+n.rng.IntN(700)) * time.Millisecond)
	}
	healStart := time.Now()
	n.logf("heal: network healed, every member thawed and restarted")
	h.settle()
	healed := time.Since(healStart)
	n.logf("healed: the primary reports every member in sync")
	hold(time.Second)
	w.finish()
	for _, m := range n.grown {
		h.clients = append(h.clients, h.client(append([]*localgroup.Member{m}, others(h.g, m)...)...))
		h.pinned = append(h.pinned, h.client(m))
	}
	s := n.judge(w, round, healed, wrongReads)
	if t.Failed() || *historyDir != "" {
		n.keepEvents(round)
	}
	return s
}

// pick deals the next fault kind from a shuffled deck of every kind, so that every kind
// comes up once in each len(faultKinds) faults; a group at maxMembers skips grow.
func (n *nemesis) pick() faultKind {
	for {
		if len(n.deck) == 0 {
			n.deck = slices.Clone(faultKinds)
			n.rng.Shuffle(len(n.deck), func(i, j int) { n.deck[i], n.deck[j] = n.deck[j], n.deck[i] })
		}
		k := n.deck[0]
		n.deck = n.deck[1:]
		if k == faultGrow && len(n.h.g.Members) >= maxMembers {
			continue
		}
		return k
	}
}

// victim draws a member: any of them when anyMember is set, else a failover member that is
// not the primary.
func (n *nemesis) victim(anyMember bool) *localgroup.Member {
	if anyMember {
		return n.h.g.Members[n.rng.IntN(len(n.h.g.Members))]
	}
	p := n.h.primary()
	var standbys []*localgroup.Member
	for _, m := range others(n.h.g, p) {
		if !m.Async {
			standbys = append(standbys, m)
		}
	}
	return standbys[n.rng.IntN(len(standbys))]
}

// inject injects one fault, holds it while the workload runs, and heals it.
func (n *nemesis) inject(kind faultKind) {
	h, t := n.h, n.h.t
	d := time.Duration(1000+n.rng.IntN(2000)) * time.Millisecond
	switch kind {
	case faultKill:
		m := n.victim(true)
		n.logf("inject kill -9 %s, for %s", m.Name, d)
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
		hold(d)
		n.logf("heal: restart %s", m.Name)
		if err := h.g.Restart(m); err != nil {
			t.Fatal(err)
		}
	case faultPause:
		m := n.victim(true)
		n.logf("inject SIGSTOP %s, for %s", m.Name, d)
		if err := m.Freeze(); err != nil {
			t.Fatal(err)
		}
		hold(d)
		n.logf("heal: SIGCONT %s", m.Name)
		if err := m.Thaw(); err != nil {
			t.Fatal(err)
		}
	case faultPartition:
		m := n.victim(true)
		n.logf("inject partition: %s cut off both ways, for %s", m.Name, d)
		n.network(h.net.Isolate(m.Name), d)
	case faultOneWay:
		n.oneWay(d)
	case faultBridge:
		n.bridge(d)
	case faultSlow:
		m := n.victim(true)
		delay := time.Duration(20+n.rng.IntN(180)) * time.Millisecond
		n.logf("inject slow: every link of %s delayed %s each way, for %s", m.Name, delay, d)
		n.network(h.net.Slow(m.Name, delay), d)
	case faultTransfer:
		n.transfer()
	case faultRemoveReadd:
		n.removeReadd(d)
	case faultGrow:
		n.grow()
	case faultRenew:
		n.renew(n.victim(true))
	}
}

// network holds a network fault whose injection returned err for d, then heals the network.
func (n *nemesis) network(err error, d time.Duration) {
	if err != nil {
		n.h.t.Fatal(err)
	}
	hold(d)
	n.logf("heal: network healed")
	n.h.net.Heal()
}

func (n *nemesis) oneWay(d time.Duration) {
	h := n.h
	m := n.victim(true)
	deaf := n.rng.IntN(2) == 0
	var err error
	for _, o := range others(h.g, m) {
		if deaf {
			err = errors.Join(err, h.net.OneWay(o.Name, m.Name))
		} else {
			err = errors.Join(err, h.net.OneWay(m.Name, o.Name))
		}
	}
	what := map[bool]string{true: "hears nobody", false: "nobody hears it"}[deaf]
	n.logf("inject one-way: %s %s, for %s", m.Name, what, d)
	n.network(err, d)
}

// bridge splits the members other than the primary into two sides that cannot reach each
// other, while the primary reaches both.
func (n *nemesis) bridge(d time.Duration) {
	h := n.h
	p := h.primary()
	rest := others(h.g, p)
	n.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	cut := 1 + n.rng.IntN(len(rest)-1)
	left, right := rest[:cut], rest[cut:]
	var err error
	for _, a := range left {
		for _, b := range right {
			err = errors.Join(err, h.net.CutLink(a.Name, b.Name))
		}
	}
	n.logf("inject bridge: %s sees %s and %s, which do not see each other, for %s", p.Name, names(left), names(right), d)
	n.network(err, d)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func names(ms []*localgroup.Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
	}
	return "{" + strings.Join(s, ",") + "}"
}

// transfer moves leadership to a failover member that is not the primary. A transfer may be
// refused (the target lags, another is under way); the refusal is logged, not failed.
func (n *nemesis) transfer() {
	to := n.victim(false)
	n.logf("inject transfer leadership to %s", to.Name)
	ctx, cancel := context.WithTimeout(n.h.t.Context(), 30*time.Second)
	defer cancel()
	if err := n.h.g.Admin().TransferLeadership(ctx, to.Name); err != nil {
		n.logf("transfer to %s refused: %v", to.Name, err)
		return
	}
	n.logf("transfer to %s done", to.Name)
}

// removeReadd removes a non-primary member while the workload runs, keeps the removed
// process running for d, then kills it, wipes its data directory and has it join and be
// added again, as an operator would.
func (n *nemesis) removeReadd(d time.Duration) {
	h, t := n.h, n.h.t
	m := n.victim(false)
	n.logf("inject remove %s, its process left running for %s", m.Name, d)
	n.membership("remove "+m.Name, func(ctx context.Context) error { return h.g.Admin().RemoveMember(ctx, m.Name) },
		func(ms []wire.Member) bool { return !listed(ms, m.Name, false) })
	hold(d)
	n.logf("heal: kill -9 %s, wipe %s, join and add it again", m.Name, m.Dir)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(m.Dir); err != nil {
		t.Fatal(err)
	}
	p := h.primary()
	if err := h.g.Start(m, "--join", p.Advertise(), "--join-pin", p.DN); err != nil {
		t.Fatal(err)
	}
	n.add(m)
	n.logf("%s added again", m.Name)
}

// add authorises m and adds it to the group, as localgroup does, until it is listed.
func (n *nemesis) add(m *localgroup.Member) {
	want := wire.Member{Name: m.Name, MemberAddr: m.Advertise(), ClientURL: m.ClientURL, DN: m.DN, Async: m.Async}
	n.membership("add "+m.Name, func(ctx context.Context) error { return n.h.g.Admin().AddMember(ctx, want) },
		func(ms []wire.Member) bool { return listed(ms, m.Name, m.Async) })
}

// membership runs a membership change until the group's member list shows done. A change
// whose answer was lost (504: the primary lost leadership before it committed; a timeout)
// may or may not have applied, as the API says: the member list decides, as an operator
// would check it, and the change is sent again if it did not apply.
func (n *nemesis) membership(what string, change func(context.Context) error, done func([]wire.Member) bool) {
	t := n.h.t
	eventually(t, 90*time.Second, what, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		if ms, err := n.h.g.Admin().Members(ctx); err == nil && done(ms) {
			return nil
		}
		if err := change(ctx); err != nil {
			n.logf("%s: %v; retrying once the member list says it did not apply", what, err)
			return err
		}
		return nil
	})
}

// listed reports whether ms holds a member called name, async or not as asked.
func listed(ms []wire.Member, name string, async bool) bool {
	for _, m := range ms {
		if m.Name == name {
			return m.Async == async
		}
	}
	return false
}

// grow adds an async member, waits until it is in sync and promotes it to failover.
func (n *nemesis) grow() {
	h, t := n.h, n.h.t
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	n.logf("inject grow: add an async member")
	before := len(h.g.Members)
	m, err := h.g.Grow(ctx, true)
	if err != nil {
		// Grow appends the member before it starts it; a member that started but whose
		// addition had a lost answer is added the way every other change here is.
		if len(h.g.Members) == before || !h.g.Members[before].Running() {
			t.Fatalf("grow the group: %v", err)
		}
		m = h.g.Members[before]
		n.logf("grow: %s started, its addition not confirmed: %s", m.Name, firstLine(err.Error()))
		n.add(m)
	}
	n.grown = append(n.grown, m)
	n.logf("%s added as an async member; promoting it", m.Name)
	if err := h.g.WaitInSync(ctx); err != nil {
		t.Fatalf("%s does not catch up: %v", m.Name, err)
	}
	n.membership("promote "+m.Name, func(ctx context.Context) error { return h.g.Admin().Promote(ctx, m.Name) },
		func(ms []wire.Member) bool { return listed(ms, m.Name, false) })
	m.Async = false
	n.logf("%s promoted to failover", m.Name)
}

// renew replaces m's leaf with a new one from the same CA over the admin API, with no
// restart, and checks that m serves it.
func (n *nemesis) renew(m *localgroup.Member) {
	t := n.h.t
	before, err := n.servedSerial(m)
	if err != nil {
		t.Fatalf("certificate served by %s: %v", m.Name, err)
	}
	n.logf("inject renew %s's certificate (serial %x) from the member CA", m.Name, before)
	out, err := runCLI(n.h.g, "member", "renew", m.Name, "--ca-dir", filepath.Join(n.h.g.PKI.Dir, "member-ca"), "--days", "100")
	if err != nil {
		t.Fatalf("member renew %s: %v\n%s", m.Name, err, out)
	}
	after, err := n.servedSerial(m)
	if err != nil {
		t.Fatalf("certificate served by %s after its renewal: %v", m.Name, err)
	}
	if after.Cmp(before) == 0 {
		t.Errorf("%s still serves serial %x after member renew:\n%s", m.Name, before, out)
	}
	n.logf("%s serves its renewed certificate (serial %x)", m.Name, after)
}

func (n *nemesis) servedSerial(m *localgroup.Member) (*big.Int, error) {
	conn, err := tls.Dial("tcp", m.ClientAddr, n.h.tls)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// judge checks a round's history as the scenarios' check does, and writes its summary line;
// healed is how long healing took, to which the time to converge adds. With wrongReads the
// history is expected to fail; failing it is then not an error.
func (n *nemesis) judge(w *workload, round int, healed time.Duration, wrongReads bool) nemesisSummary {
	t := n.h.t
	convergeStart := time.Now()
	finals := w.converge()
	converged := healed + time.Since(convergeStart)
	n.logf("converged: every member holds the same data")
	ops := w.rec.Ops()
	res, err := history.Check(ops, checkTimeout)
	if err != nil {
		t.Fatalf("check history: %v", err)
	}
	s := nemesisSummary{Seed: n.seed, Round: round, Faults: n.faults, Ops: len(ops), Checked: res.Ops,
		Unknown: w.stats.unknown.Load(), Undecided: res.Unknown, Lost: lostAcked(ops, finals),
		ConvergeSeconds: converged.Seconds(), Seconds: time.Since(n.start).Seconds()}
	if !res.Linearizable && !res.Unknown {
		s.Anomalies = 1
	}
	t.Logf("seed %d round %d: faults %v; %d ops (%d checked), %d unknown; linearizable=%v undecided=%v; acknowledged writes lost: %d; converged %.1fs after healing began",
		n.seed, round, n.faults, s.Ops, s.Checked, s.Unknown, res.Linearizable, res.Unknown, s.Lost, s.ConvergeSeconds)
	if !wrongReads {
		n.writeSummary(s)
	}
	if !res.Linearizable {
		path := filepath.Join(n.dir(), fmt.Sprintf("nemesis-seed%d-round%d.html", n.seed, round))
		if err := res.WriteHTML(path); err != nil {
			t.Errorf("write history report: %v", err)
		}
		if wrongReads {
			t.Logf("the checker rejected the history with stale reads; porcupine's report: %s", path)
			return s
		}
		t.Errorf("seed %d: history of round %d is not linearizable (undecided: %v); porcupine's report: %s", n.seed, round, res.Unknown, path)
	}
	if s.Lost > 0 && !wrongReads {
		t.Errorf("seed %d round %d: %d acknowledged writes lost", n.seed, round, s.Lost)
	}
	return s
}

// nemesisDir is where the nemesis writes its summary and event logs: -mirrorkv.history-dir's
// nemesis directory, or a new one under $TMPDIR in a soak that was given none.
func nemesisDir(t *testing.T) string {
	base := *historyDir
	if base == "" {
		if *nemesisSoak == 0 {
			return failureDir(t)
		}
		*historyDir = failureDir(t)
		base = *historyDir
	}
	dir := filepath.Join(base, "nemesis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (n *nemesis) writeSummary(s nemesisSummary) {
	if *historyDir == "" {
		return
	}
	t := n.h.t
	f, err := os.OpenFile(filepath.Join(n.dir(), "summary.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := json.NewEncoder(f).Encode(s); err != nil {
		t.Fatal(err)
	}
}

// keepEvents writes the round's fault log next to its history report, for replaying it.
func (n *nemesis) keepEvents(round int) {
	t := n.h.t
	path := filepath.Join(n.dir(), fmt.Sprintf("seed%d-round%d.log", n.seed, round))
	if err := os.WriteFile(path, []byte(strings.Join(n.events, "\n")+"\n"), 0o644); err != nil {
		t.Errorf("write the fault log: %v", err)
		return
	}
	t.Logf("fault log of seed %d round %d: %s", n.seed, round, path)
}

// staleAsLinearizable is the wrong read path of the teeth test: a read from one member's own
// copy, recorded as a linearizable get.
func (w *workload) staleAsLinearizable(id int, key string) (string, int64, error) {
	m := w.h.staleFrom[rand.IntN(len(w.h.staleFrom))]
	p := w.rec.Begin(id, history.Get, key, "", "")
	r, err := w.h.staleGet(context.Background(), m, key)
	switch {
	case err != nil:
		p.End(history.Output{Unknown: true})
		w.stats.unknown.Add(1)
		return "", 0, err
	case r.status == http.StatusOK:
		p.End(history.Output{Found: true, Value: r.value})
	case r.status == http.StatusNotFound:
		p.End(history.Output{})
	default:
		p.End(history.Output{Unknown: true})
		w.stats.unknown.Add(1)
		return "", 0, fmt.Errorf("stale read of %s on %s: status %d", key, m.Name, r.status)
	}
	w.stats.ok.Add(1)
	return r.value, r.keyRev, nil
}
