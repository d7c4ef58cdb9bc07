// Package metadb is the WAL's types.MetaStore over a bbolt file, wal-meta.db (mode
// 0600): the segment list and raft's stable values.
package metadb
