package agent

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func heapFree() uint64 { return readMetric("/memory/classes/heap/free:bytes") }

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestMemoryReturnAfterABurst(t *testing.T) {
	m := newMemoryReturn(10 * time.Second)
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	m.check(now) // the first check frees whatever lies unused
	// A burst: 16 MB allocated and dropped.
	junk := make([][]byte, 0, 256)
	for range 256 {
		junk = append(junk, make([]byte, 64<<10))
	}
	runtime.KeepAlive(junk)
	junk = nil
	runtime.GC()
	if heapFree() < 1<<20 {
		t.Skip("the runtime returned the burst's memory by itself")
	}
	m.check(now.Add(5 * time.Second)) // within the period: not even a look
	if !m.last.Equal(now) {
		t.Fatalf("checked within the period (last %s)", m.last)
	}
	// Other tests of the package may allocate meanwhile: look at what was
	// given back, not at what is free afterwards.
	free, released := heapFree(), readMetric("/memory/classes/heap/released:bytes")
	m.check(now.Add(11 * time.Second))
	if got := readMetric("/memory/classes/heap/released:bytes"); got < released+free/2 {
		t.Fatalf("the check gave back %d bytes of %d unused", int64(got)-int64(released), free)
	}
}
