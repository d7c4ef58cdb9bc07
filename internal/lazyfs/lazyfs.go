// Package lazyfs is a FUSE file system for tests that loses, on a simulated power loss,
// what was written but not fsync'd, as a disk with a volatile write cache does. It passes
// every operation through to a backing directory and keeps, per file, an undo log of the
// writes and size changes since that file's last fsync; Crash unmounts it (dropping the
// kernel's page cache too) and rolls every file back to its last fsync'd content. It plays
// the part of Jepsen's LazyFS in the power-loss test of the e2e suite.
//
// What it does not model: file creation, rename, unlink and directory changes are durable
// at once (a real file system may lose a new file whose directory was not fsync'd), and a
// write is lost or kept whole, never torn. Both make it kinder than a real power loss, never
// harsher, so what breaks under it breaks for real.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is one mount of a backing directory.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server

	mu    sync.Mutex
	files map[uint64]*fileState // by the backing file's inode number

	writes, syncs atomic.Int64 // for Stats
}

// Stats reports how many writes and fsyncs of files came through the file system, so that a
// test can tell that its process really wrote there.
func (f *FS) Stats() (writes, syncs int64) { return f.writes.Load(), f.syncs.Load() }

// fileState is what was done to one backing file since its last fsync.
type fileState struct {
	mu   sync.Mutex
	fd   int // a dup of a backing fd, kept while undo is not empty, for Crash
	undo []undoRecord
}

// undoRecord restores a file to its state before one write or size change: its size, and
// the bytes the change overwrote below that size.
type undoRecord struct {
	off     int64
	old     []byte
	oldSize int64
}

// Mount mounts backing at mountpoint (both existing directories). It needs the rights to
// mount a FUSE file system (root, or fusermount).
func Mount(backing, mountpoint string) (*FS, error) {
	f := &FS{backing: backing, mountpoint: mountpoint, files: map[uint64]*fileState{}}
	rootData := &fs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: stat %s: %w", backing, err)
	}
	rootData.Dev = uint64(st.Dev)
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: rootData}, fsys: f}
	rootData.RootNode = root
	sec := time.Second
	server, err := fs.Mount(mountpoint, root, &fs.Options{
		AttrTimeout: &sec, EntryTimeout: &sec,
		MountOptions: fuse.MountOptions{DirectMount: true, FsName: "lazyfs", Name: "lazyfs", DisableXAttrs: true},
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Unmount unmounts the file system and keeps every write, as a clean shutdown would.
func (f *FS) Unmount() error {
	err := f.server.Unmount()
	f.mu.Lock()
	defer f.mu.Unlock()
	for ino, s := range f.files {
		s.mu.Lock()
		if s.fd >= 0 {
			syscall.Close(s.fd)
		}
		s.mu.Unlock()
		delete(f.files, ino)
	}
	return err
}

// Crash unmounts the file system, as a power loss would take it away, and rolls every file
// back to its content at its last fsync. Stop the processes that use it first: a process
// that still has a file open keeps the mount busy. It returns how many bytes of writes were
// lost.
func (f *FS) Crash() (lost int64, err error) {
	if err := f.server.Unmount(); err != nil {
		// A process may still hold a file: detach the mount anyway, as a power loss would.
		if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
			return 0, fmt.Errorf("lazyfs: unmount %s: %w (detach: %v)", f.mountpoint, err, derr)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for ino, s := range f.files {
		s.mu.Lock()
		for i := len(s.undo) - 1; i >= 0; i-- {
			u := s.undo[i]
			lost += int64(len(u.old))
			if len(u.old) > 0 {
				if _, err := syscall.Pwrite(s.fd, u.old, u.off); err != nil {
					errs = append(errs, fmt.Errorf("lazyfs: roll back inode %d: %w", ino, err))
				}
			}
			if err := syscall.Ftruncate(s.fd, u.oldSize); err != nil {
				errs = append(errs, fmt.Errorf("lazyfs: roll back inode %d: %w", ino, err))
			}
		}
		if s.fd >= 0 {
			if err := syscall.Fsync(s.fd); err != nil {
				errs = append(errs, err)
			}
			syscall.Close(s.fd)
		}
		s.mu.Unlock()
		delete(f.files, ino)
	}
	return lost, errors.Join(errs...)
}

// state returns the state of the backing file open as fd.
func (f *FS) state(fd int) (*fileState, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.files[st.Ino]
	if s == nil {
		s = &fileState{fd: -1}
		f.files[st.Ino] = s
	}
	return s, nil
}

// record notes, before a change to [off, off+n) or to the size (n < 0: a truncate to off),
// what it will overwrite. s.mu is held.
func (s *fileState) record(fd int, off, n int64) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	u := undoRecord{off: off, oldSize: st.Size}
	end := off + n
	if n < 0 { // truncate: what lies past the new end
		end = st.Size
	}
	if end > st.Size {
		end = st.Size
	}
	if end > off {
		u.old = make([]byte, end-off)
		if _, err := syscall.Pread(fd, u.old, off); err != nil {
			return err
		}
	}
	if s.fd < 0 {
		dup, err := syscall.Dup(fd)
		if err != nil {
			return err
		}
		s.fd = dup
	}
	s.undo = append(s.undo, u)
	return nil
}

// synced forgets the undo log: the file is on disk as it is.
func (s *fileState) synced() {
	s.undo = nil
	if s.fd >= 0 {
		syscall.Close(s.fd)
		s.fd = -1
	}
}

// node is a loopback node whose files keep undo logs.
type node struct {
	*fs.LoopbackNode
	fsys *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
)

func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fsys: n.fsys}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.wrap(fh), fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return in, n.wrap(fh), fl, 0
}

// Setattr with a size and no open file (truncate(2) by path) is a size change to undo.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if lf, ok := fh.(*file); ok {
		return lf.Setattr(ctx, in, out)
	}
	if size, ok := in.GetSize(); ok {
		fd, err := syscall.Open(n.backingPath(), syscall.O_RDWR, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		defer syscall.Close(fd)
		if errno := n.fsys.recordFd(fd, int64(size), -1); errno != 0 {
			return errno
		}
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

func (n *node) backingPath() string {
	return n.RootData.Path + "/" + n.Path(n.Root())
}

func (n *node) wrap(fh fs.FileHandle) fs.FileHandle {
	return &file{lf: fh.(*fs.LoopbackFile), fsys: n.fsys}
}

func (f *FS) recordFd(fd int, off, n int64) syscall.Errno {
	s, err := f.state(fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fs.ToErrno(s.record(fd, off, n))
}

// file is an open backing file. It does not offer its fd for kernel passthrough: every
// write must come through Write to be recorded.
type file struct {
	lf   *fs.LoopbackFile
	fsys *FS
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
)

func (f *file) fd() (int, syscall.Errno) {
	fd, ok := f.lf.PassthroughFd()
	if !ok {
		return -1, syscall.EBADF
	}
	return fd, 0
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	fd, errno := f.fd()
	if errno != 0 {
		return 0, errno
	}
	s, err := f.fsys.state(fd)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.record(fd, off, int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	n, err := syscall.Pwrite(fd, data, off)
	f.fsys.writes.Add(1)
	return uint32(n), fs.ToErrno(err)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	fd, errno := f.fd()
	if errno != 0 {
		return errno
	}
	s, err := f.fsys.state(fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := syscall.Fsync(fd); err != nil {
		return fs.ToErrno(err)
	}
	s.synced()
	f.fsys.syncs.Add(1)
	return 0
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		fd, errno := f.fd()
		if errno != 0 {
			return errno
		}
		if errno := f.fsys.recordFd(fd, int64(size), -1); errno != 0 {
			return errno
		}
	}
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	fd, errno := f.fd()
	if errno != 0 {
		return errno
	}
	// Allocation may grow the file; what it covers reads as zeros or as before.
	if errno := f.fsys.recordFd(fd, int64(off), int64(size)); errno != 0 {
		return errno
	}
	return f.lf.Allocate(ctx, off, size, mode)
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }
func (f *file) Flush(ctx context.Context) syscall.Errno   { return f.lf.Flush(ctx) }
func (f *file) Getattr(ctx context.Context, a *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, a)
}
func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}
