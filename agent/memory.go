package agent

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryReturn hands memory the agent no longer uses back to the kernel
// after a burst: a queue of presses or a backlog drained leaves a heap and
// goroutine stacks that Go's scavenger would return only slowly, and a Pi
// Zero has 512 MB for everything. Checked from the main loop; it frees only
// when more than a megabyte lies unused, at most once a period.
type memoryReturn struct {
	period time.Duration
	last   time.Time
	sample []metrics.Sample
}

func newMemoryReturn(period time.Duration) *memoryReturn {
	// Heap memory wholly free and not yet returned (goroutine stacks
	// that ended come back to the heap there too).
	return &memoryReturn{period: period, sample: []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
	}}
}

// check frees unused memory if the period has passed and enough lies idle.
func (m *memoryReturn) check(now time.Time) {
	if now.Sub(m.last) < m.period {
		return
	}
	m.last = now
	metrics.Read(m.sample)
	var unused uint64
	for _, s := range m.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			unused += s.Value.Uint64()
		}
	}
	if unused > 1<<20 {
		debug.FreeOSMemory()
	}
}
