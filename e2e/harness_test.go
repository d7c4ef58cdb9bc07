package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/internal/faultnet"
	"github.com/mirrorkv/mirrorkv/internal/history"
	"github.com/mirrorkv/mirrorkv/internal/localgroup"
	"github.com/mirrorkv/mirrorkv/wire"
)

// The fault harness: a group whose member links run through faultnet proxies, a concurrent
// workload that records every operation, and a porcupine check of each history. A scenario
// is one fault schedule (a round) run under that workload; with -mirrorkv.soak the rounds
// repeat, each with a fresh history over its own keys, until the duration has passed.

var (
	soak = flag.Duration("mirrorkv.soak", 0,
		"repeat each fault scenario's round under load for this long (0: one short round, the CI form)")
	historyDir = flag.String("mirrorkv.history-dir", "",
		"keep failing histories (porcupine HTML) and a summary of every check here (default: a new directory under $TMPDIR, logged)")
)

// Workload shape. Few keys and many clients make the clients collide on every key, which is
// what linearizability checking needs; unique values make the checker's compare-by-value CAS
// agree with the API's compare-by-revision one.
const (
	workers      = 8
	keysPerRound = 5
	// opTimeout bounds one client call, failover included. A member without a primary waits
	// up to 2 heartbeat + 6 election timeouts (4s here) for one before it answers 503, so this
	// leaves room for that answer and a retry elsewhere, while calls to a frozen member still
	// give up and are recorded as unknown within a round.
	opTimeout = 6 * time.Second
	// rawTimeout bounds the single-member requests that check what a member answers; it is
	// the Go client's default.
	rawTimeout = client.DefaultTimeout
	// checkTimeout bounds porcupine per history; an undecided check fails the scenario
	// rather than passing it.
	checkTimeout = 2 * time.Minute
)

// faultServe is fastServe plus the small snapshot settings that make restarts and catch-up
// exercise snapshots too.
var faultServe = append([]string{"--snapshot-threshold", "512", "--trailing-logs", "256"}, fastServe...)

// harness is a group behind fault proxies.
type harness struct {
	t   *testing.T
	g   *localgroup.Group
	net *faultnet.Net
	rng *rand.Rand
	// clients talks to every member, member i first; pinned talks to member i only.
	clients, pinned []*client.Client
	// staleFrom, when set, turns the workload's linearizable gets into ?stale=true reads
	// from these members, recorded as linearizable: the wrong read path that a checker
	// with teeth must reject.
	staleFrom []*localgroup.Member
	raw       *http.Client // for headers the Go client does not expose
	tls       *tls.Config  // the admin client's
}

type harnessOptions struct {
	failover, async int
	serveArgs       []string
	// seed seeds the harness's random choices; 0 picks one from the clock.
	seed uint64
	// spare is how many more loopback addresses to set aside for members grown later.
	spare int
	// beforeStart runs after the proxies are set up and before any member starts.
	beforeStart func(*localgroup.Group) error
}

// startHarness starts failover+async members on 127.0.0.1, 127.0.0.2, ... (one address each,
// so that a proxy tells members apart by source IP), each behind its own faultnet proxy.
func startHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	n := o.failover + o.async
	hosts := make([]string, n+o.spare)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", i+1)
	}
	fn := faultnet.NewNet()
	t.Cleanup(func() {
		if err := fn.Close(); err != nil {
			t.Errorf("close fault proxies: %v", err)
		}
	})
	seed := o.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("harness seed %d", seed)
	h := &harness{t: t, net: fn, rng: rand.New(rand.NewPCG(seed, 0))}
	args := o.serveArgs
	if args == nil {
		args = faultServe
	}
	h.g = startGroup(t, localgroup.Options{
		Failover: o.failover, Async: o.async, Hosts: hosts, ServeArgs: args,
		BeforeStart: func(g *localgroup.Group) error {
			for _, m := range g.Members {
				p, err := fn.Add(m.Name, net.JoinHostPort(m.Host, "0"), m.MemberAddr, m.Host)
				if err != nil {
					return err
				}
				m.AdvertiseAddr = p.Addr()
			}
			if o.beforeStart != nil {
				return o.beforeStart(g)
			}
			return nil
		},
		BeforeGrow: func(m *localgroup.Member) error {
			p, err := fn.Add(m.Name, net.JoinHostPort(m.Host, "0"), m.MemberAddr, m.Host)
			if err != nil {
				return err
			}
			m.AdvertiseAddr = p.Addr()
			return nil
		},
	})
	tlsCfg, err := client.LoadTLS(h.g.PKI.MemberCA, h.g.PKI.AdminCert, h.g.PKI.AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	h.tls = tlsCfg
	for i, m := range h.g.Members {
		order := append([]*localgroup.Member{m}, others(h.g, m)...)
		h.clients = append(h.clients, h.client(order...))
		h.pinned = append(h.pinned, h.client(h.g.Members[i]))
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 16}
	// Each call bounds itself with its context; this only catches one that does not.
	h.raw = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return h
}

// client is a Go client of the given members, tried in that order, with the harness's
// call timeout.
func (h *harness) client(members ...*localgroup.Member) *client.Client {
	h.t.Helper()
	eps := make([]string, len(members))
	for i, m := range members {
		eps[i] = m.ClientURL
	}
	c, err := client.New(client.Config{Endpoints: eps, TLS: h.tls, Timeout: opTimeout})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) index(m *localgroup.Member) int {
	for i, x := range h.g.Members {
		if x == m {
			return i
		}
	}
	h.t.Fatalf("member %s is not in the group", m.Name)
	return -1
}

// primary waits for a member that reports itself PRIMARY.
func (h *harness) primary() *localgroup.Member { return primaryOf(h.t, h.g) }

// newPrimary waits until a member other than old reports itself PRIMARY. A frozen or cut-off
// old primary may still believe it leads, so only the others are asked.
func (h *harness) newPrimary(old *localgroup.Member, timeout time.Duration) *localgroup.Member {
	h.t.Helper()
	var p *localgroup.Member
	eventually(h.t, timeout, "another member takes over from "+old.Name, func() error {
		for _, m := range others(h.g, old) {
			if m.Async || !m.Running() {
				continue
			}
			if st, err := statusOf(h.t, h.g, m); err == nil && st.Role == wire.RolePrimary {
				p = m
				return nil
			}
		}
		return errors.New("no other member reports PRIMARY")
	})
	return p
}

// settle undoes every fault (heals the network, thaws and restarts the members) and waits
// until the primary reports every member in sync.
func (h *harness) settle() {
	h.t.Helper()
	h.net.Heal()
	for _, m := range h.g.Members {
		if m.Running() {
			if err := m.Thaw(); err != nil {
				h.t.Fatal(err)
			}
			continue
		}
		if err := h.g.Restart(m); err != nil {
			h.t.Fatal(err)
		}
	}
	// Generous: a member that was stalled replays its backlog, and race-built members are
	// several times slower than the product.
	ctx, cancel := context.WithTimeout(h.t.Context(), 150*time.Second)
	defer cancel()
	if err := h.g.WaitInSync(ctx); err != nil {
		h.t.Fatalf("group does not settle after the faults are undone: %v\n%s", err, h.dumpMembers())
	}
}

// staleRead is one ?stale=true read with the headers the Go client hides.
type staleRead struct {
	status   int
	value    string
	keyRev   int64 // ETag; 0 when the key does not exist
	storeRev int64 // X-Mirrorkv-Revision
	stale    bool  // X-Mirrorkv-Stale: true
}

func (h *harness) staleGet(ctx context.Context, m *localgroup.Member, key string) (staleRead, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/v1/kv/"+key+"?stale=true", nil)
	if err != nil {
		return staleRead{}, err
	}
	resp, err := h.raw.Do(req)
	if err != nil {
		return staleRead{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return staleRead{}, err
	}
	r := staleRead{status: resp.StatusCode, stale: resp.Header.Get(wire.HeaderStale) == "true"}
	r.storeRev, _ = strconv.ParseInt(resp.Header.Get(wire.HeaderRevision), 10, 64)
	if resp.StatusCode == http.StatusOK {
		r.value = string(body)
		r.keyRev, _ = strconv.ParseInt(strings.Trim(resp.Header.Get("Etag"), `"`), 10, 64)
	}
	return r, nil
}

// --- workload ---------------------------------------------------------------------------

// stats counts what the workload's clients saw.
type stats struct {
	ok, refused, unknown, unexpected atomic.Int64
	mu                               sync.Mutex
	samples                          []string // a few unexpected errors, for the log
}

func (s *stats) unexpectedErr(err error) {
	s.unexpected.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 5 {
		s.samples = append(s.samples, err.Error())
	}
}

// workload runs workers clients over keys until stopped, recording every operation.
type workload struct {
	h     *harness
	rec   *history.Recorder
	keys  []string
	stats *stats
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	// ids hands out client numbers for operations outside the workers (probes, final reads).
	ids atomic.Int64
}

func (h *harness) startWorkload(round int) *workload {
	w := &workload{h: h, rec: history.NewRecorder(), stats: &stats{}, stop: make(chan struct{})}
	for i := range keysPerRound {
		w.keys = append(w.keys, fmt.Sprintf("r%d/k%d", round, i))
	}
	w.ids.Store(workers)
	for id := range workers {
		rng := rand.New(rand.NewPCG(h.rng.Uint64(), uint64(id)))
		w.wg.Go(func() { w.run(id, rng) })
	}
	h.t.Cleanup(w.finish) // a scenario that fails half-way must not leave clients running
	return w
}

func (w *workload) run(id int, rng *rand.Rand) {
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		c := w.h.clients[rng.IntN(len(w.h.clients))]
		key := w.keys[rng.IntN(len(w.keys))]
		value := fmt.Sprintf("c%d-%d", id, seq)
		var err error
		switch r := rng.IntN(20); {
		case r < 7:
			_, _, err = w.get(c, id, key)
		case r < 14:
			err = w.put(c, id, key, value)
		default:
			err = w.cas(c, id, key, value)
		}
		pause := time.Duration(rng.IntN(5)) * time.Millisecond
		if err != nil {
			pause = 50 * time.Millisecond // nothing answers: do not spin
		}
		time.Sleep(pause)
	}
}

// finish stops the workers and waits for them.
func (w *workload) finish() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *workload) opCtx() (context.Context, context.CancelFunc) {
	// Not the test's context: a call cut short by the test ending would be a false unknown.
	return context.WithTimeout(context.Background(), opTimeout)
}

// get is a linearizable read, recorded.
func (w *workload) get(c *client.Client, id int, key string) (string, int64, error) {
	if w.h.staleFrom != nil {
		return w.staleAsLinearizable(id, key)
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	p := w.rec.Begin(id, history.Get, key, "", "")
	v, rev, err := c.Get(ctx, key)
	switch {
	case err == nil:
		p.End(history.Output{Found: true, Value: string(v)})
		w.stats.ok.Add(1)
		return string(v), rev, nil
	case client.IsNotFound(err):
		p.End(history.Output{})
		w.stats.ok.Add(1)
		return "", 0, nil
	}
	p.End(history.Output{Unknown: true})
	w.classify(err)
	return "", 0, err
}

// put writes a unique value, recorded.
func (w *workload) put(c *client.Client, id int, key, value string) error {
	ctx, cancel := w.opCtx()
	defer cancel()
	p := w.rec.Begin(id, history.Put, key, value, "")
	_, err := c.Put(ctx, key, []byte(value))
	p.End(w.writeOutcome(err))
	return err
}

// cas reads key and writes value only if the key is still at the revision read, recorded as
// the read and a CAS whose Expect is the value read.
func (w *workload) cas(c *client.Client, id int, key, value string) error {
	seen, rev, err := w.get(c, id, key)
	if err != nil {
		return err
	}
	ctx, cancel := w.opCtx()
	defer cancel()
	p := w.rec.Begin(id, history.CAS, key, value, seen)
	if seen == "" { // absent: values are never empty
		_, err = c.Create(ctx, key, []byte(value))
	} else {
		_, err = c.PutIf(ctx, key, []byte(value), rev)
	}
	p.End(w.writeOutcome(err))
	return err
}

// writeOutcome turns a write's error into what the checker may assume. A definite refusal
// (412, or a 503/502 that says the request was not taken, or a dial that failed) did not
// apply; anything else (504, a lost connection, a timeout, an unexpected status) may have.
func (w *workload) writeOutcome(err error) history.Output {
	if err == nil {
		w.stats.ok.Add(1)
		return history.Output{OK: true}
	}
	if _, ok := client.IsPreconditionFailed(err); ok {
		w.stats.ok.Add(1)
		return history.Output{}
	}
	if w.classify(err) {
		return history.Output{}
	}
	return history.Output{Unknown: true}
}

// classify counts err and reports whether it is a definite refusal.
func (w *workload) classify(err error) bool {
	if refused(err) {
		w.stats.refused.Add(1)
		return true
	}
	w.stats.unknown.Add(1)
	if e, ok := errors.AsType[*client.Error](err); ok && e.Status != http.StatusGatewayTimeout {
		w.stats.unexpectedErr(err)
	}
	return false
}

// refused reports an error after which the request certainly did not take effect.
func refused(err error) bool {
	if e, ok := errors.AsType[*client.Error](err); ok {
		return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusBadGateway
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return true
	}
	return false
}

// --- checking ---------------------------------------------------------------------------

// verdict is what one round's history showed.
type verdict struct {
	Scenario   string `json:"scenario"`
	Round      int    `json:"round"`
	Ops        int    `json:"ops"`     // operations recorded
	Checked    int    `json:"checked"` // given to porcupine
	Unknown    int64  `json:"unknown"` // calls with an unknown outcome
	Refused    int64  `json:"refused"`
	Unexpected int64  `json:"unexpected"`
	Anomalies  int    `json:"anomalies"` // 0 or 1: the history is not linearizable
	Undecided  bool   `json:"undecided"`
	Lost       int    `json:"lostAckedWrites"`
	Seconds    int    `json:"seconds"`
}

// finalRead is the value each key ends with, read linearizably after the faults.
type finalRead struct {
	found bool
	value string
}

// check ends a round: it waits until every member holds the same data, reads every key
// linearizably through every member (into the history), checks the history with porcupine
// and counts acknowledged writes that the final state lost.
func (w *workload) check(name string, round int, started time.Time) verdict {
	t := w.h.t
	t.Helper()
	finals := w.converge()
	ops := w.rec.Ops()
	res, err := history.Check(ops, checkTimeout)
	if err != nil {
		t.Fatalf("check history: %v", err)
	}
	v := verdict{Scenario: name, Round: round, Ops: len(ops), Checked: res.Ops,
		Unknown: w.stats.unknown.Load(), Refused: w.stats.refused.Load(),
		Unexpected: w.stats.unexpected.Load(), Undecided: res.Unknown,
		Lost: lostAcked(ops, finals), Seconds: int(time.Since(started).Seconds())}
	if !res.Linearizable && !res.Unknown {
		v.Anomalies = 1
	}
	t.Logf("%s round %d: %d ops (%d checked), %d unknown, %d refused, %d unexpected; linearizable=%v undecided=%v; acknowledged writes lost: %d",
		name, round, v.Ops, v.Checked, v.Unknown, v.Refused, v.Unexpected, res.Linearizable, res.Unknown, v.Lost)
	if len(w.stats.samples) > 0 {
		t.Logf("unexpected errors (first %d): %s", len(w.stats.samples), strings.Join(w.stats.samples, " | "))
	}
	record(t, v)
	if !res.Linearizable {
		path := filepath.Join(failureDir(t), fmt.Sprintf("%s-round%d.html", strings.ReplaceAll(name, "/", "_"), round))
		if err := res.WriteHTML(path); err != nil {
			t.Errorf("write history report: %v", err)
		}
		what := "is not linearizable"
		if res.Unknown {
			what = "could not be decided within " + checkTimeout.String()
		}
		t.Errorf("history of round %d %s; porcupine's report: %s", round, what, path)
	}
	if v.Lost > 0 {
		t.Errorf("round %d: %d acknowledged writes lost", round, v.Lost)
	}
	return v
}

// converge waits until every member's own copy of every key is the same, then reads each key
// linearizably through every member, recording the reads, and returns the last values read.
func (w *workload) converge() map[string]finalRead {
	h := w.h
	t := h.t
	t.Helper()
	eventually(t, 30*time.Second, "every member holds the same data", func() error {
		for _, key := range w.keys {
			var first staleRead
			for i, m := range h.g.Members {
				r, err := h.staleGet(t.Context(), m, key)
				if err != nil {
					return err
				}
				if r.status != http.StatusOK && r.status != http.StatusNotFound {
					return fmt.Errorf("stale read of %s on %s: status %d", key, m.Name, r.status)
				}
				if i == 0 {
					first = r
				} else if r.status != first.status || r.value != first.value || r.keyRev != first.keyRev {
					return fmt.Errorf("%s: %s has %q@%d, %s has %q@%d", key, h.g.Members[0].Name, first.value, first.keyRev, m.Name, r.value, r.keyRev)
				}
			}
		}
		return nil
	})
	finals := make(map[string]finalRead)
	id := int(w.ids.Add(1))
	for i := range h.g.Members {
		for _, key := range w.keys {
			v, _, err := w.get(h.pinned[i], id, key)
			if err != nil {
				t.Fatalf("final linearizable read of %s through %s: %v", key, h.g.Members[i].Name, err)
			}
			finals[key] = finalRead{found: v != "", value: v}
		}
	}
	return finals
}

// lostAcked counts acknowledged writes that the final state certainly lost: the key ends
// absent, or with a value whose write was acknowledged before the acknowledged write began.
// Porcupine catches these too; the count is the figure the reliability report gives.
func lostAcked(ops []history.Op, finals map[string]finalRead) int {
	writers := make(map[string]history.Op) // value -> the op that wrote it
	for _, op := range ops {
		if (op.Kind == history.Put || op.Kind == history.CAS) && (op.Out.OK || op.Out.Unknown) {
			writers[op.Key+"\x00"+op.Value] = op
		}
	}
	lost := 0
	for _, op := range ops {
		if (op.Kind != history.Put && op.Kind != history.CAS) || !op.Out.OK {
			continue
		}
		f, ok := finals[op.Key]
		if !ok || (f.found && f.value == op.Value) {
			continue
		}
		if !f.found {
			lost++
			continue
		}
		last, ok := writers[op.Key+"\x00"+f.value]
		if !ok || (last.Out.OK && last.Return < op.Call) {
			lost++
		}
	}
	return lost
}

// failureDir is where failing histories go: -mirrorkv.history-dir, or a directory that
// outlives the test (t.TempDir would be removed with the very report it should keep).
func failureDir(t *testing.T) string {
	if *historyDir != "" {
		if err := os.MkdirAll(*historyDir, 0o755); err != nil {
			t.Fatal(err)
		}
		return *historyDir
	}
	dir, err := os.MkdirTemp("", "mirrorkv-histories-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// record appends v to summary.jsonl in -mirrorkv.history-dir, the figures docs/reliability.md
// reports.
func record(t *testing.T, v verdict) {
	if *historyDir == "" {
		return
	}
	if err := os.MkdirAll(*historyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(*historyDir, "summary.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := json.NewEncoder(f).Encode(v); err != nil {
		t.Fatal(err)
	}
}

// --- scenarios ----------------------------------------------------------------------------

// scenario is a named fault schedule. faults runs one round of it while the workload runs;
// it may leave faults in place, which settle undoes before the round is checked.
type scenario struct {
	opts harnessOptions
	// warmup is how long the workload runs before the faults; calm how long after.
	warmup, calm time.Duration
	faults       func(h *harness, w *workload)
}

// run starts the group and runs rounds of sc until -mirrorkv.soak has passed (one round
// when it is zero), checking each round's history.
func (sc scenario) run(t *testing.T) {
	h := startHarness(t, sc.opts)
	if sc.warmup == 0 {
		sc.warmup = time.Second
	}
	if sc.calm == 0 {
		sc.calm = time.Second
	}
	start := time.Now()
	histories, ops := 0, 0
	for round := 0; ; round++ {
		roundStart := time.Now()
		w := h.startWorkload(round)
		time.Sleep(sc.warmup)
		sc.faults(h, w)
		h.settle()
		time.Sleep(sc.calm)
		w.finish()
		v := w.check(t.Name(), round, roundStart)
		histories++
		ops += v.Checked
		if t.Failed() || time.Since(start) >= *soak {
			break
		}
	}
	t.Logf("%s: %d histories, %d operations checked in %s", t.Name(), histories, ops, time.Since(start).Round(time.Second))
}

// hold keeps a fault in place for d while the workload runs.
func hold(d time.Duration) { time.Sleep(d) }

// dumpMembers makes every running member print its goroutines (SIGQUIT ends it) and keeps
// each member's whole log in a directory that outlives the test, for diagnosing a hang.
func (h *harness) dumpMembers() string {
	dir, err := os.MkdirTemp("", "mirrorkv-dump-")
	if err != nil {
		return fmt.Sprintf("(no dump: %v)", err)
	}
	for _, m := range h.g.Members {
		if pid := m.Pid(); pid != 0 && m.Running() {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
	time.Sleep(2 * time.Second)
	for _, m := range h.g.Members {
		_ = os.WriteFile(filepath.Join(dir, m.Name+".log"), []byte(m.Log()), 0o600)
	}
	return "members' logs and goroutine dumps: " + dir
}
