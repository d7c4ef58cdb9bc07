// Package fs is the WAL's types.VFS over the operating system's files: it lists,
// creates (preallocated, mode 0600), opens and deletes segment files.
package fs
