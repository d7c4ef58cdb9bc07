package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/mirrorkv/mirrorkv/store"
	"github.com/mirrorkv/mirrorkv/wire"
)

// recoveryFile records, in the raft directory, the last disaster recovery of this member,
// for the status.
const recoveryFile = "recovery.json"

// Recovery is what a disaster recovery did (Recover), as the status reports it.
type Recovery = wire.Recovery

// RecoverStore is the store as Recover needs it.
type RecoverStore interface {
	StateMachine
	Revision() int64
}

// Recover makes this stopped member the only voter of a new configuration, keeping its
// data: raft.RecoverCluster over its own raft directory. It then withdraws the
// authorisation of every member but itself and keep (the async members to keep following),
// through entries appended to its log and applied to its store at once, so that when it
// starts no old member is authorised: under policy dn an old member that comes back is
// refused until added again, and two primaries can never both serve. The member must not
// be running (its directory is locked while it is). The caller checks first that no
// majority of the old voters can be reached.
func Recover(cfg Config, st RecoverStore, keep []string, log *slog.Logger) (Recovery, error) {
	cfg = cfg.withDefaults()
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return Recovery{}, err
	}
	defer lock.Close()
	rec := Recovery{At: time.Now().UTC(), From: cfg.Name, AppliedIndex: st.AppliedIndex(), Revision: st.Revision()}
	ms, err := st.Members()
	if err != nil {
		return Recovery{}, fmt.Errorf("read members: %w", err)
	}
	for _, k := range keep {
		if i := slices.IndexFunc(ms, func(m store.Member) bool { return m.Name == k }); i < 0 || !ms[i].Async || k == cfg.Name {
			return Recovery{}, fmt.Errorf("keep %s: not an async member of the group: %w", k, ErrUnknownMember)
		}
	}
	hlog := newHCLog(log.With("component", "raft"))
	kind, err := logStoreFor(cfg.LogStore, cfg.Dir)
	if err != nil {
		return Recovery{}, err
	}
	logs, stable, closer, err := openLogStore(kind, cfg.Dir, hlog)
	if err != nil {
		return Recovery{}, err
	}
	defer closer.Close()
	snaps, err := openSnapshotStore(cfg.Dir, 2, hlog)
	if err != nil {
		return Recovery{}, err
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.Name), Address: raft.ServerAddress(cfg.Advertise)}}}
	for _, m := range ms {
		if slices.Contains(keep, m.Name) {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Nonvoter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.MemberAddr)})
		}
	}
	f := newFSM(st, isMemberCommand, func() {})
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Advertise))
	rc := raft.DefaultConfig()
	rc.LocalID, rc.Logger = raft.ServerID(cfg.Name), hlog
	err = raft.RecoverCluster(rc, releasingFSM{f}, logs, stable, snaps, trans, conf)
	f.close()
	if err != nil {
		return Recovery{}, fmt.Errorf("recover raft configuration: %w", err)
	}
	rec.LastIndex, rec.LastRevision = st.AppliedIndex(), st.Revision()
	if rec.Removed, err = withdrawOthers(cfg, st, logs, ms, keep); err != nil {
		return Recovery{}, err
	}
	rec.Kept = keep
	return rec, writeRecovery(cfg.Dir, rec)
}

// withdrawOthers appends to the log, and applies to the store at once, the removal of every
// member record but this member's and keep's, and this member's own record as a failover
// member. Raft commits them once this member leads; the store has them from the start, so
// the authoriser never accepts an old member.
func withdrawOthers(cfg Config, st RecoverStore, logs raft.LogStore, ms []store.Member, keep []string) ([]string, error) {
	last, err := logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft log: %w", err)
	}
	last = max(last, st.AppliedIndex())
	term, err := lastTerm(logs, last, cfg.Dir)
	if err != nil {
		return nil, err
	}
	var cmds []store.Command
	var removed []string
	for _, m := range ms {
		switch {
		case m.Name == cfg.Name:
			m.Async = false
			cmds = append(cmds, store.Command{Op: store.OpSetMember, Member: m})
		case !slices.Contains(keep, m.Name):
			cmds = append(cmds, store.Command{Op: store.OpRemoveMember, Member: store.Member{Name: m.Name}})
			removed = append(removed, m.Name)
		}
	}
	slices.Sort(removed)
	entries := make([]*raft.Log, len(cmds))
	batch := make([]store.Entry, len(cmds))
	for i, c := range cmds {
		data := store.EncodeCommand(c)
		entries[i] = &raft.Log{Index: last + 1 + uint64(i), Term: term, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
		batch[i] = store.Entry{Index: entries[i].Index, Data: data}
	}
	if err := logs.StoreLogs(entries); err != nil {
		return nil, fmt.Errorf("append member withdrawals to the raft log: %w", err)
	}
	for i, r := range st.ApplyBatch(batch) {
		if r.Err != nil {
			return nil, fmt.Errorf("apply %v of member %s: %w", cmds[i].Op, cmds[i].Member.Name, r.Err)
		}
	}
	return removed, nil
}

// lastTerm is the term of the log entry at index, or of the newest snapshot when the log
// no longer holds it (RecoverCluster compacts the log into one).
func lastTerm(logs raft.LogStore, index uint64, dir string) (uint64, error) {
	var l raft.Log
	if err := logs.GetLog(index, &l); err == nil {
		return l.Term, nil
	}
	snaps, err := openSnapshotStore(dir, 2, newHCLog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return 0, errors.Join(errors.New("find the term of the last raft entry: no log entry and no snapshot"), err)
	}
	return metas[0].Term, nil
}

func writeRecovery(dir string, rec Recovery) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode recovery record: %w", err)
	}
	path := filepath.Join(dir, recoveryFile)
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return fmt.Errorf("write recovery record: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("write recovery record: %w", err)
	}
	return nil
}

// readRecovery is the recovery record in dir, nil when there is none.
func readRecovery(dir string) (*Recovery, error) {
	data, err := os.ReadFile(filepath.Join(dir, recoveryFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read recovery record: %w", err)
	}
	var rec Recovery
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("read recovery record %s: %w", filepath.Join(dir, recoveryFile), err)
	}
	return &rec, nil
}

// releasingFSM is the FSM as RecoverCluster gets it: RecoverCluster persists the snapshot it
// takes but never releases it, and the store's snapshot holds a read transaction that would
// keep the store from closing.
type releasingFSM struct{ *fsm }

func (f releasingFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.fsm.Snapshot()
	if err != nil {
		return nil, err
	}
	return releasingSnapshot{s}, nil
}

type releasingSnapshot struct{ raft.FSMSnapshot }

func (s releasingSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.FSMSnapshot.Release()
	return s.FSMSnapshot.Persist(sink)
}

// Release does nothing: Persist has released the snapshot.
func (releasingSnapshot) Release() {}
