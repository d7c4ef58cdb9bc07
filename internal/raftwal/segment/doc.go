// Package segment reads and writes the WAL's segment files: the file header, the
// frames that hold entries, the index frame that seals a full segment, and the Filer
// that creates, recovers, opens, lists and deletes them.
package segment
