package statushttp

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The go_* and process_* series, under the names and with the meanings of
// client_golang's Go and process collectors, which the agent served before.

func gauge(name, help string) metric   { return metric{name, "gauge", help} }
func counter(name, help string) metric { return metric{name, "counter", help} }

// writeRuntime writes the Go runtime's series.
func writeRuntime(e expo) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	pauses := gauge("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.")
	pauses.kind = "summary"
	e.family(pauses)
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		e.sample(pauses, gc.PauseQuantiles[i].Seconds(), "quantile", q)
	}
	e.sample(metric{name: "go_gc_duration_seconds_sum"}, gc.PauseTotal.Seconds())
	e.sample(metric{name: "go_gc_duration_seconds_count"}, float64(gc.NumGC))

	samples := []runtimemetrics.Sample{
		{Name: "/gc/gogc:percent"},
		{Name: "/gc/gomemlimit:bytes"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	runtimemetrics.Read(samples)
	for i, m := range []metric{
		gauge("go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100 (GOGC)."),
		gauge("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64 (GOMEMLIMIT)."),
		gauge("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting."),
	} {
		if samples[i].Value.Kind() == runtimemetrics.KindUint64 {
			e.one(m, float64(samples[i].Value.Uint64()))
		}
	}
	e.one(gauge("go_goroutines", "Number of goroutines that currently exist."), float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	e.one(gauge("go_threads", "Number of OS threads created."), float64(threads))
	e.one(gauge("go_info", "Information about the Go environment."), 1, "version", runtime.Version())

	for _, v := range []struct {
		m metric
		v uint64
	}{
		{gauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use."), ms.Alloc},
		{counter("go_memstats_alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already."), ms.TotalAlloc},
		{gauge("go_memstats_buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table."), ms.BuckHashSys},
		{counter("go_memstats_frees_total", "Total number of heap objects frees."), ms.Frees},
		{gauge("go_memstats_gc_sys_bytes", "Number of bytes used for garbage collection system metadata."), ms.GCSys},
		{gauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use."), ms.HeapAlloc},
		{gauge("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used."), ms.HeapIdle},
		{gauge("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use."), ms.HeapInuse},
		{gauge("go_memstats_heap_objects", "Number of currently allocated objects."), ms.HeapObjects},
		{gauge("go_memstats_heap_released_bytes", "Number of heap bytes released to OS."), ms.HeapReleased},
		{gauge("go_memstats_heap_sys_bytes", "Number of heap bytes obtained from system."), ms.HeapSys},
		{counter("go_memstats_mallocs_total", "Total number of heap objects allocated."), ms.Mallocs},
		{gauge("go_memstats_mcache_inuse_bytes", "Number of bytes in use by mcache structures."), ms.MCacheInuse},
		{gauge("go_memstats_mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system."), ms.MCacheSys},
		{gauge("go_memstats_mspan_inuse_bytes", "Number of bytes in use by mspan structures."), ms.MSpanInuse},
		{gauge("go_memstats_mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system."), ms.MSpanSys},
		{gauge("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place."), ms.NextGC},
		{gauge("go_memstats_other_sys_bytes", "Number of bytes used for other system allocations."), ms.OtherSys},
		{gauge("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator."), ms.StackInuse},
		{gauge("go_memstats_stack_sys_bytes", "Number of bytes obtained from system for stack allocator."), ms.StackSys},
		{gauge("go_memstats_sys_bytes", "Number of bytes obtained from system."), ms.Sys},
	} {
		e.one(v.m, float64(v.v))
	}
	e.one(gauge("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection."), float64(ms.LastGC)/1e9)
}

// userHZ is the unit of the times in /proc/PID/stat on every Linux the
// agent runs on.
const userHZ = 100

// writeProcess writes the process's series from /proc; a series whose
// source cannot be read is left out, as client_golang did.
func writeProcess(e expo) {
	if st, err := os.ReadFile("/proc/self/stat"); err == nil {
		// The fields after the command name, which is in parentheses.
		if i := bytes.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) {
			f := strings.Fields(string(st[i+2:]))
			if len(f) > 21 {
				utime, _ := strconv.ParseFloat(f[11], 64)
				stime, _ := strconv.ParseFloat(f[12], 64)
				start, _ := strconv.ParseFloat(f[19], 64)
				vsize, _ := strconv.ParseFloat(f[20], 64)
				rss, _ := strconv.ParseFloat(f[21], 64)
				e.one(counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."), (utime+stime)/userHZ)
				e.one(gauge("process_resident_memory_bytes", "Resident memory size in bytes."), rss*float64(os.Getpagesize()))
				e.one(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes."), vsize)
				if btime, ok := bootTime(); ok {
					e.one(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds."), btime+start/userHZ)
				}
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.one(gauge("process_open_fds", "Number of open file descriptors."), float64(len(fds)))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		e.one(gauge("process_max_fds", "Maximum number of open file descriptors."), rlimit(lim.Cur))
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err == nil {
		e.one(gauge("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."), rlimit(lim.Cur))
	}
	if rx, tx, ok := netBytes("/proc/self/net/dev"); ok {
		e.one(counter("process_network_receive_bytes_total", "Number of bytes received by the process over the network."), float64(rx))
		e.one(counter("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."), float64(tx))
	}
}

// rlimit is a resource limit as client_golang reported it: -1 for none
// (32-bit ARM kernels may report the 32-bit infinity).
func rlimit(v uint64) float64 {
	if v == math.MaxUint64 || v == math.MaxUint32 {
		return -1
	}
	return float64(v)
}

// bootTime reads the boot time, in seconds since the epoch, from /proc/stat.
func bootTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			t, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t, err == nil
		}
	}
	return 0, false
}

// netBytes sums the received and transmitted bytes of every interface of
// the process's network namespace.
func netBytes(path string) (rx, tx uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		_, rest, found := strings.Cut(l, ":")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 == nil && err2 == nil {
			rx, tx = rx+r, tx+t
		}
	}
	return rx, tx, true
}
