package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mirrorkv/mirrorkv/reason"
)

// Bucket and key names of the bbolt file; docs/storage.md describes the layout.
const (
	bucketKV      = "kv"      // key -> record (revision, created, value)
	bucketMembers = "members" // member name -> Member as JSON
	bucketCRLs    = "crls"    // PORT/ISSUER -> CRL as JSON (crl.go)
	bucketMeta    = "meta"    // the keys below -> 8-byte big-endian numbers

	metaFormat   = "format"
	metaApplied  = "applied"
	metaRevision = "revision"
	metaSumKey   = "sum" // record.go
)

// fileFormat is the layout version in meta/format. Open refuses any other, so an older
// release never misreads a file a newer one wrote. Format 2 added the checksums of
// record.go; a format 1 file is resynced from the group (see initBuckets).
const fileFormat = 2

// lockTimeout bounds how long Open waits for bbolt's file lock. Long enough to ride out a
// previous process that is still exiting, short enough that a second mirrorkv on the same
// data directory fails at once with a message that says so.
const lockTimeout = time.Second

// restoreSuffix names the file Restore builds next to the store before swapping it in.
const restoreSuffix = ".restore"

// Options tune Open. The zero value is what production wants.
type Options struct {
	// Logger receives the store's own reports, such as a disk that refuses writes. Nil
	// discards them.
	Logger *slog.Logger
	// NoFsync skips fsync on commit. A crash may then lose or tear applied entries, so it is
	// for tests and benchmarks only.
	NoFsync bool
	// FlushInterval, when positive, turns on write-behind: ApplyBatch applies to memory and
	// the file is committed at most this long later (sooner when 4 MiB or 8192 changes
	// accumulate). A crash then loses what was not yet committed, so the caller must be able
	// to replay every entry beyond AppliedIndex as of the file, as a raft log does. Zero
	// commits every ApplyBatch before it returns.
	FlushInterval time.Duration
	// OnCRL, when set, is called after an applied command or a restored snapshot changed
	// the group's CRLs (read them with CRLs). It runs on the apply path: it must return at
	// once, and not call the store.
	OnCRL func()
	// ChangeRetention is how many of the latest revisions the change log keeps for watchers
	// (changes.go); zero keeps DefaultChangeRetention.
	ChangeRetention int64
}

// Store is a member's copy of the replicated state in one bbolt file. Its methods are safe
// for concurrent use; ApplyBatch, Restore and Close are serialised among themselves.
type Store struct {
	path    string
	log     *slog.Logger
	noFsync bool
	onCRL   func()

	// writeMu serialises the writers: ApplyBatch, Restore and Close.
	writeMu sync.Mutex
	// dbMu guards the db pointer, which Restore swaps and Close clears. Readers hold it for
	// the length of their bbolt transaction; only the swap and Close take it exclusively.
	dbMu sync.RWMutex
	// retired closes the files Restore replaced, each once its last snapshot is released.
	retired sync.WaitGroup
	db      *bolt.DB

	// applied and revision mirror meta/applied and meta/revision, updated after each commit,
	// so the hot paths (raft asking for the applied index, reads reporting the revision) do
	// not open a transaction.
	applied  atomic.Uint64
	revision atomic.Int64

	closing   chan struct{} // closed by Close; wakes an ApplyBatch waiting for the disk
	closeOnce sync.Once

	// stall is the error of the commit ApplyBatch is retrying, nil while it is not; see
	// Stalled.
	stall atomic.Pointer[error]

	// failCommit, when set (tests only, before any ApplyBatch), is called just before each
	// commit; an error fails that attempt as a full disk would.
	failCommit func() error

	// The change log (changes.go): how many revisions it keeps, the oldest it holds, and
	// the channel Changed hands out, closed when the revision moves.
	changeRetention int64
	changesFrom     atomic.Int64
	changed         atomic.Pointer[chan struct{}]
	// memChanges is what memoryChanges returns, republished under ovMu whenever the
	// write-behind layers change, so that readers of the log take no lock.
	memChanges atomic.Pointer[[][]Change]

	// Write-behind (behind.go); flushKick is nil when it is off. Lock order: flushMu, then
	// writeMu, then ovMu.
	flushMu     sync.Mutex    // serialises flushes, Snapshot's final one, Restore and Close
	ovMu        sync.RWMutex  // guards active, flushing and their maps, and flushed
	active      *overlay      // changes since the last flush began
	flushing    *overlay      // the layer being committed; nil when no commit is pending
	flushed     chan struct{} // closed and replaced after each committed layer
	flushKick   chan struct{}
	flusherDone chan struct{}

	// leases is the lease table in memory (lease.go), moved after each commit.
	leaseMu sync.Mutex
	leases  map[int64]leaseMem
}

// Open opens or creates the store file at path. It fails if another process holds the file
// (bbolt's lock) or if the file is damaged.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := openDB(path, opts.NoFsync)
	if err != nil {
		return nil, err
	}
	// A leftover restore file is a restore that crashed before its rename: the store file
	// was never touched, so the leftover is garbage. Only now, holding the store file's lock,
	// is it certain that no other process is building it.
	if err := os.Remove(path + restoreSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = db.Close() // the remove error is the one to report
		return nil, fmt.Errorf("remove leftover restore file %s: %w", path+restoreSuffix, err)
	}
	s := &Store{path: path, log: log, noFsync: opts.NoFsync, onCRL: opts.OnCRL, db: db, closing: make(chan struct{}),
		changeRetention: opts.ChangeRetention}
	if s.changeRetention <= 0 {
		s.changeRetention = DefaultChangeRetention
	}
	changed := make(chan struct{})
	s.changed.Store(&changed)
	if err := s.loadMeta(db); err != nil {
		_ = db.Close() // the meta error is the one to report
		return nil, err
	}
	if opts.FlushInterval > 0 {
		s.active, s.flushed = newOverlay(), make(chan struct{})
		s.flushKick, s.flusherDone = make(chan struct{}, 1), make(chan struct{})
		go s.flusher(opts.FlushInterval)
	}
	return s, nil
}

// openDB opens the bbolt file and makes sure its buckets exist and its format is known.
// bbolt panics on some damage (a freelist page that points nowhere) instead of returning an
// error; that is turned into the same "damaged" refusal as the damage it does report.
func openDB(path string, noSync bool) (_ *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("bbolt: %v", r))
		}
	}()
	if err := CheckBoltFile(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, boltOptions(noSync))
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open store %s: file is locked by another process; stop the other mirrorkv using this data directory: %w", path, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, damaged(path, err)
	default:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close() // the init error is the one to report
		if errors.Is(err, errDamaged) {
			return nil, damaged(path, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// boltOptions are the options of the store file and of the file Restore builds.
func boltOptions(noSync bool) *bolt.Options {
	opts := &bolt.Options{
		Timeout:      lockTimeout,
		NoSync:       noSync,
		FreelistType: bolt.FreelistMapType,
	}
	if strconv.IntSize == 64 {
		// Reserve address space up front. bbolt must remap to grow, and a remap waits for
		// every open read transaction (a snapshot being streamed to a slow follower would
		// stall the apply path) and copies every dirty node of the write transaction to the
		// heap (a restore would copy its whole chunk at each doubling). This is address space
		// only; the file still grows as data arrives, in steps of bbolt's 16 MiB AllocSize.
		opts.InitialMmapSize = 1 << 30
	}
	return opts
}

func damaged(path string, err error) error {
	return reason.Wrap(reason.Corrupt, fmt.Errorf("store file %s is damaged: %w; move it aside and restart the member with --join HOST:PORT --join-pin DN of a running member (`mirrorkv member list` shows both), which then sends it the group's members and a snapshot", path, err))
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range []string{bucketKV, bucketMembers, bucketCRLs, bucketLeases} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if _, err := tx.CreateBucketIfNotExists([]byte(bucketChanges)); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketChanges, err)
	}
	meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
	}
	v := meta.Get([]byte(metaFormat))
	if v == nil {
		return meta.Put([]byte(metaFormat), u64(fileFormat))
	}
	if len(v) != 8 {
		return fmt.Errorf("meta/%s of %d bytes: %w", metaFormat, len(v), errDamaged)
	}
	if f := binary.BigEndian.Uint64(v); f == 1 {
		return errors.New("file format 1, written by an earlier mirrorkv without record checksums: move it aside and restart the member with --join HOST:PORT --join-pin DN of a running member (`mirrorkv member list` shows both), which then sends it the group's members and a snapshot in the current format")
	} else if f != fileFormat {
		return fmt.Errorf("file format %d, this mirrorkv reads only %d; run the release that wrote it", f, fileFormat)
	}
	return nil
}

// loadMeta fills the applied index and revision caches from the file.
func (s *Store) loadMeta(db *bolt.DB) error {
	err := db.View(func(tx *bolt.Tx) error {
		applied, revision, err := readMeta(tx)
		if err == nil {
			err = verifyRecords(tx)
		}
		var oldest int64
		if err == nil {
			oldest, err = changesFrom(tx)
		}
		if err != nil {
			return damaged(s.path, err)
		}
		s.changesFrom.Store(oldest)
		s.applied.Store(applied)
		s.revision.Store(revision)
		return nil
	})
	if err != nil {
		return err
	}
	return s.loadLeases(db)
}

func readMeta(tx *bolt.Tx) (applied uint64, revision int64, err error) {
	meta := tx.Bucket([]byte(bucketMeta))
	applied, err = metaUint(meta, metaApplied)
	if err != nil {
		return 0, 0, err
	}
	rev, err := metaUint(meta, metaRevision)
	if err != nil {
		return 0, 0, err
	}
	if rev > 1<<63-1 {
		return 0, 0, fmt.Errorf("meta/%s is %d: %w", metaRevision, rev, errDamaged)
	}
	if sum := meta.Get([]byte(metaSumKey)); (applied != 0 || rev != 0 || sum != nil) && !bytes.Equal(sum, metaSum(applied, int64(rev))) {
		return 0, 0, fmt.Errorf("meta/%s does not match the applied index %d and revision %d: %w", metaSumKey, applied, rev, errDamaged)
	}
	return applied, int64(rev), nil
}

// metaUint reads a number from the meta bucket; a missing one is 0 (a new store).
func metaUint(meta *bolt.Bucket, key string) (uint64, error) {
	v := meta.Get([]byte(key))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("meta/%s of %d bytes: %w", key, len(v), errDamaged)
	}
	return binary.BigEndian.Uint64(v), nil
}

func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// Close waits for a running ApplyBatch or Restore (one waiting for the disk gives up with
// ErrClosed) and for open snapshots to be released, commits what write-behind holds, then
// closes the file. Calling it again returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	if s.flushKick != nil {
		<-s.flusherDone
		if err := s.Flush(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("closing with applied entries not in the store file; the raft log replays them at the next start",
				"err", err, "file_applied", s.fileApplied())
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	defer s.retired.Wait()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// fileApplied is the applied index the file holds, which write-behind may leave behind
// AppliedIndex.
func (s *Store) fileApplied() uint64 {
	var applied uint64
	_ = s.view(func(tx *bolt.Tx) error {
		applied, _, _ = readMeta(tx)
		return nil
	})
	return applied
}

// AppliedIndex is the raft index of the last entry the store applied (or restored).
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// Revision is the store-wide revision: the number of puts and deletes ever applied.
func (s *Store) Revision() int64 { return s.revision.Load() }

// view runs fn in a bbolt read transaction on the current file.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

// Get returns key with a copy of its value, or ErrNotFound.
func (s *Store) Get(key string) (KV, error) {
	if rec, ok := s.pendingRecord(key, bucketKV); ok {
		if rec == nil {
			return KV{}, ErrNotFound
		}
		kv, err := parseRecord(key, rec)
		if err != nil {
			return KV{}, s.readErr(fmt.Errorf("get %q: %w", key, err))
		}
		return kv, nil
	}
	var kv KV
	err := s.view(func(tx *bolt.Tx) error {
		rec := tx.Bucket([]byte(bucketKV)).Get([]byte(key))
		if rec == nil {
			return ErrNotFound
		}
		var err error
		kv, err = parseRecord(key, rec)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return KV{}, err
		}
		return KV{}, s.readErr(fmt.Errorf("get %q: %w", key, err))
	}
	return kv, nil
}

// Range selects the keys List returns.
type Range struct {
	Prefix string // keys that start with Prefix
	Start  string // and are at or after Start (inclusive); empty: from Prefix on
	Limit  int    // at most Limit keys; <= 0: no limit
	// MaxBytes bounds the keys' and values' bytes: List stops before the key that would
	// take the total past it, but always returns at least one key. <= 0: no bound.
	MaxBytes int
}

// List returns the keys in r, in order. more reports that further keys match (the limit or
// the byte bound cut the listing): pass the last key returned plus "\x00" as Start to
// continue. It never copies more than r.MaxBytes of keys and values (or one key and value).
func (s *Store) List(r Range) (kvs []KV, more bool, err error) {
	prefix, limit := r.Prefix, r.Limit
	seek := prefix
	if r.Start > seek {
		seek = r.Start
	}
	// A key in memory may be in the file as well (a commit that ended before the
	// transaction began): memory wins, with the same or a newer record.
	var mem []pendingKV
	var used int // key and value bytes in kvs
	kvs = []KV{}
	err = s.viewWithMemory(func() { mem = s.pendingRange(prefix, seek) }, func(tx *bolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket([]byte(bucketKV)).Cursor()
		k, v := c.Seek([]byte(seek))
		if k != nil && !bytes.HasPrefix(k, p) {
			k = nil
		}
		for k != nil || len(mem) > 0 {
			var key string
			var rec []byte
			switch {
			case k == nil || (len(mem) > 0 && mem[0].key < string(k)):
				key, rec, mem = mem[0].key, mem[0].rec, mem[1:]
			case len(mem) > 0 && mem[0].key == string(k):
				key, rec, mem = mem[0].key, mem[0].rec, mem[1:]
				if k, v = c.Next(); k != nil && !bytes.HasPrefix(k, p) {
					k = nil
				}
			default:
				key, rec = string(k), v
				if k, v = c.Next(); k != nil && !bytes.HasPrefix(k, p) {
					k = nil
				}
			}
			if rec == nil { // deleted in memory
				continue
			}
			if limit > 0 && len(kvs) == limit {
				more = true
				return nil
			}
			rev, created, value, err := splitRecord([]byte(key), rec)
			if err != nil {
				return fmt.Errorf("key %q: %w", key, err)
			}
			size := len(key) + len(value)
			if r.MaxBytes > 0 && len(kvs) > 0 && used+size > r.MaxBytes {
				more = true
				return nil
			}
			used += size
			kvs = append(kvs, copyKV(key, rev, created, value))
		}
		return nil
	})
	if err != nil {
		return nil, false, s.readErr(fmt.Errorf("list prefix %q: %w", prefix, err))
	}
	return kvs, more, nil
}

// Members returns the authorised members, sorted by name.
func (s *Store) Members() ([]Member, error) {
	ms, _, err := s.MembersAt()
	return ms, err
}

// MembersAt returns the authorised members, sorted by name, and the raft index of the state
// they were read from: a member that joins through this one trusts this list only until its
// own store has applied that index, and its own list from then on.
func (s *Store) MembersAt() ([]Member, uint64, error) {
	var mem map[string][]byte
	var memApplied, fileApplied uint64
	ms := []Member{}
	add := func(name string, rec []byte) error {
		v, err := memberJSON([]byte(name), rec)
		if err != nil {
			return err
		}
		m, err := decodeMember(v)
		if err != nil {
			return fmt.Errorf("member %q: %w: %w", name, errDamaged, err)
		}
		ms = append(ms, m)
		return nil
	}
	read := func() {
		mem = s.pendingTable(bucketMembers)
		for _, o := range s.layers() {
			if o != nil {
				memApplied = max(memApplied, o.applied)
			}
		}
	}
	err := s.viewWithMemory(read, func(tx *bolt.Tx) error {
		var err error
		if fileApplied, _, err = readMeta(tx); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketMembers)).ForEach(func(k, v []byte) error {
			if _, ok := mem[string(k)]; ok {
				return nil
			}
			return add(string(k), v)
		})
	})
	for name, v := range mem {
		if err == nil && v != nil {
			err = add(name, v)
		}
	}
	if err != nil {
		return nil, 0, s.readErr(fmt.Errorf("list members: %w", err))
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms, max(memApplied, fileApplied), nil
}

// readErr codes a read that found damage (a checksum that does not match) as a damaged
// store, with what to do, so that the client and the log say more than "internal error".
func (s *Store) readErr(err error) error {
	if errors.Is(err, errDamaged) {
		return damaged(s.path, err)
	}
	return err
}

// parseRecord copies a kv record out of bbolt's memory, which is valid only inside the
// transaction.
func parseRecord(key string, rec []byte) (KV, error) {
	rev, created, value, err := splitRecord([]byte(key), rec)
	if err != nil {
		return KV{}, fmt.Errorf("key %q: %w", key, err)
	}
	return copyKV(key, rev, created, value), nil
}

// copyKV builds a KV with a copy of value.
func copyKV(key string, rev, created int64, value []byte) KV {
	kv := KV{Key: key, Revision: rev, Created: created}
	if len(value) > 0 {
		kv.Value = bytes.Clone(value)
	}
	return kv
}

// syncDir fsyncs dir so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func dirOf(path string) string { return filepath.Dir(path) }
