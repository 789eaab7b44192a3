// Package quantile summarises measured durations for benchmarks.
package quantile

import (
	"sort"
	"time"
)

// Of returns the q-quantile (0..1) of ds by the nearest-rank method; ds is
// sorted in place.
func Of(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(q*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}

// Micros renders d in microseconds, for testing.B.ReportMetric.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
