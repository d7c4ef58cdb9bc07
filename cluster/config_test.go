package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestConfig_Validate(t *testing.T) {
	good := Config{Name: "m0", Dir: "/tmp/m0", Advertise: "127.0.0.1:7000"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error; empty for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"heartbeat alone raises the election timeout", func(c *Config) { c.HeartbeatTimeout = 2 * time.Second }, ""},
		{"election shorter than heartbeat", func(c *Config) { c.ElectionTimeout = 300 * time.Millisecond }, "election timeout 300ms is shorter than heartbeat timeout 500ms"},
		{"lease longer than heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, "leader lease timeout 1s exceeds heartbeat timeout 500ms"},
		{"commit timeout below raft's floor", func(c *Config) { c.CommitTimeout = time.Microsecond }, "commit timeout 1µs is too short"},
		{"negative", func(c *Config) { c.HeartbeatTimeout = -time.Second }, "heartbeat timeout -1s is negative"},
		{"log store", func(c *Config) { c.LogStore = "rocks" }, `log store "rocks" unknown`},
		{"every problem at once", func(c *Config) { c.Name, c.Dir = "", "" }, "member name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v; want an error containing %q", err, tc.want)
			}
			if err == nil {
				rc := (&Cluster{cfg: c.withDefaults()}).raftConfig(newHCLog(testLogger(t)))
				if rerr := raft.ValidateConfig(rc); rerr != nil {
					t.Errorf("raft refuses a config Validate accepted: %v", rerr)
				}
			}
		})
	}
}
