//go:build deps

// Package main pins the modules that packages under construction import, so that module
// tidying keeps them; it is never built.
package main

import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/hashicorp/raft-wal"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/youmark/pkcs8"
	_ "go.etcd.io/bbolt"
)

func main() {}
