package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/mirrorkv/mirrorkv/client"
)

// Follow a prefix from a listing: the listing gives the state and its revision, the watch
// every change after it, resuming across member failures by itself. When the members no
// longer keep the revision to resume from, list again and go on from there.
func ExampleClient_Watch() {
	var c *client.Client // from client.New
	ctx := context.Background()
	state := map[string][]byte{}
	for {
		l, err := c.List(ctx, "app/", "", 0) // one page here; a large prefix pages with l.Next
		if err != nil {
			log.Fatal(err)
		}
		clear(state)
		for _, kv := range l.KVs {
			state[kv.Key] = kv.Value
		}
		for resp, err := range c.Watch(ctx, "app/", client.From(l.Revision+1)) {
			if _, ok := errors.AsType[*client.CompactedError](err); ok {
				break // list again
			}
			if err != nil {
				log.Fatal(err)
			}
			for _, e := range resp.Events {
				if e.Type == "delete" {
					delete(state, e.Key)
				} else {
					state[e.Key] = e.Value
				}
				fmt.Printf("%s %s at revision %d\n", e.Type, e.Key, e.Revision)
			}
		}
	}
}
