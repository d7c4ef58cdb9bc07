// Package types holds what the WAL's packages share: log entries, segment information,
// the interfaces of segment files, the VFS and the meta store, and pooled buffers.
package types
