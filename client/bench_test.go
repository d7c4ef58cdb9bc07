package client_test

import (
	"bytes"
	"testing"

	"github.com/mirrorkv/mirrorkv/api"
	"github.com/mirrorkv/mirrorkv/api/apitest"
)

// The client benchmarks run over real mutual TLS on loopback against a fake group: they
// measure the client, the connection reuse and the API's request path, not replication.

func BenchmarkClient_Put(b *testing.B) {
	srv := apitest.Start(b, api.Config{}, nil)
	c := newBenchClient(b, srv)
	value := bytes.Repeat([]byte("v"), 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Put(b.Context(), "bench/key", value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClient_Get(b *testing.B) {
	srv := apitest.Start(b, api.Config{}, nil)
	c := newBenchClient(b, srv)
	if _, err := c.Put(b.Context(), "bench/key", bytes.Repeat([]byte("v"), 256)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Get(b.Context(), "bench/key"); err != nil {
			b.Fatal(err)
		}
	}
}
