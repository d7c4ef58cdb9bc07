package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/mirrorkv/mirrorkv/client"
	"github.com/mirrorkv/mirrorkv/wire"
)

func Example() {
	tlsCfg, err := client.LoadTLS("ca.crt", "alice.crt", "alice.key")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{
		Endpoints: []string{"https://10.0.0.1:8001", "https://10.0.0.2:8001", "https://10.0.0.3:8001"},
		TLS:       tlsCfg,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	if _, err := c.Put(ctx, "app/config", []byte("v1")); err != nil {
		log.Fatal(err)
	}
	value, rev, err := c.Get(ctx, "app/config")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s at revision %d\n", value, rev)
}

// A compare-and-set loop: read, change, write back only if nobody else wrote in between.
func ExampleClient_PutIf() {
	var c *client.Client // from client.New
	ctx := context.Background()
	for {
		value, rev, err := c.Get(ctx, "counter")
		if err != nil {
			log.Fatal(err)
		}
		_, err = c.PutIf(ctx, "counter", append(value, '+'), rev)
		if _, conflict := client.IsPreconditionFailed(err); conflict {
			continue // someone else wrote first: read again
		}
		if err != nil {
			log.Fatal(err)
		}
		return
	}
}

// Every key under a prefix, however many pages the members cut the listing into.
func ExampleClient_ListAll() {
	var c *client.Client // from client.New
	for kv, err := range c.ListAll(context.Background(), "app/", 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s at revision %d\n", kv.Key, kv.Revision)
	}
}

// A transfer between two accounts: both keys change together, and only if neither changed
// since they were read.
func ExampleClient_Txn() {
	var c *client.Client // from client.New
	ctx := context.Background()
	_, ra, err := c.Get(ctx, "acct/alice")
	if err != nil {
		log.Fatal(err)
	}
	_, rb, err := c.Get(ctx, "acct/bob")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Txn(ctx, client.Txn{
		Compare: []wire.Compare{client.CompareRevision("acct/alice", "=", ra), client.CompareRevision("acct/bob", "=", rb)},
		Then:    []wire.TxnOp{client.TxnPut("acct/alice", []byte("70")), client.TxnPut("acct/bob", []byte("30"))},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied:", res.Succeeded, "at revision", res.Revision)
}

// Service registration: the key stays while this process keeps its lease alive, and goes
// (within a heartbeat of the TTL) once it stops or dies.
func ExampleClient_Grant() {
	var c *client.Client // from client.New
	ctx, stop := context.WithCancel(context.Background())
	defer stop() // stops the keep-alives: the key goes within a TTL
	l, err := c.Grant(ctx, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.PutWithLease(ctx, "svc/web/host7", []byte("10.0.0.7:443"), l.ID); err != nil {
		log.Fatal(err)
	}
	done := c.KeepAliveInBackground(ctx, l)
	// ... serve ...
	if err := <-done; client.IsLeaseNotFound(err) {
		log.Printf("lease %d lapsed: register again", l.ID)
	}
}
