package agent

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func heapFree() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
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
	m.check(now.Add(11 * time.Second))
	if f := heapFree(); f >= 1<<20 {
		t.Fatalf("%d bytes of heap still unused and kept after the check", f)
	}
}
