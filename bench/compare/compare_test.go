package main

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mirrorkv/mirrorkv/loadgen"
)

func TestTimeline_LongestGap(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		ok       []time.Duration
		at, end  time.Duration
		want     time.Duration
		censored bool
	}{
		{"gap across the kill", ms(100, 200, 300, 1500, 1510), 350 * time.Millisecond, 2 * time.Second, 1200 * time.Millisecond, false},
		{"a later gap is longer", ms(100, 300, 400, 2000), 350 * time.Millisecond, 3 * time.Second, 1600 * time.Millisecond, false},
		{"gaps before the kill do not count", ms(0, 5000, 5010, 5020), 5005 * time.Millisecond, 6 * time.Second, 10 * time.Millisecond, false},
		{"no success after the kill", ms(100, 200), 250 * time.Millisecond, 3 * time.Second, 2800 * time.Millisecond, true},
		{"out of order", ms(1500, 100, 300, 200), 350 * time.Millisecond, 2 * time.Second, 1200 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := &timeline{ok: tc.ok}
			got, censored := tl.longestGap(tc.at, tc.end)
			if got != tc.want || censored != tc.censored {
				t.Errorf("longestGap = %s, %t; want %s, %t", got, censored, tc.want, tc.censored)
			}
		})
	}
}

func TestEtcdErr(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want loadgen.ErrorKind
	}{
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), loadgen.Timeout},
		{"refused", status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:1: connect: connection refused"), loadgen.Refused},
		{"handshake", status.Error(codes.Unavailable, "authentication handshake failed: tls: bad certificate"), loadgen.TLS},
		{"no leader", status.Error(codes.Unavailable, "etcdserver: no leader"), loadgen.Server},
		{"reset", status.Error(codes.Unavailable, "error reading from server: EOF"), loadgen.Closed},
		{"compare", status.Error(codes.FailedPrecondition, "etcdserver: revision mismatch"), loadgen.Conflict},
		{"plain", errors.New("boom"), loadgen.Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadgen.Classify(etcdErr(tc.err)); got != tc.want {
				t.Errorf("kind of %v = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	if etcdErr(nil) != nil {
		t.Error("etcdErr(nil) is not nil")
	}
}
