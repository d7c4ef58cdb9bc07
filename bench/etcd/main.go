// Command etcd is the etcd server at the version pinned in this module's go.mod, built from
// the Go module proxy so that the comparison in ../compare needs no download site.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
