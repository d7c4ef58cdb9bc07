// Package metrics defines the WAL's counters and gauges and the collectors that record
// them: atomics read back as a Summary, or armon/go-metrics.
package metrics
