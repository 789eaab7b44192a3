package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sys/unix"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/fsfloor"
	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/internal/quantile"
)

// arrival is a record received by the benchmark's subscriber.
type arrival struct {
	seq uint64
	at  time.Time
}

// arrivals subscribes to the rating topic and delivers each record's seq
// and the moment its message reached the subscriber's callback.
func arrivals(b testing.TB, broker string) <-chan arrival {
	b.Helper()
	ch := make(chan arrival, 1024)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-subscriber"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber: %v", tok.Error())
	}
	b.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(topics.rating, 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		var r struct{ Seq uint64 }
		if json.Unmarshal(m.Payload(), &r) == nil {
			ch <- arrival{r.Seq, at}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	return ch
}

// BenchmarkPressToBroker is the online path of one press through the real
// agent binary: typed on its input, bound, made durable, published, and
// received by a subscriber of Mosquitto on loopback. Between two presses
// it measures the disk's floor (two page writes, each with fdatasync) in
// the outbox's directory, so the press and the floor meet the same disk
// and the same neighbours; over-floor-µs is the press's p50 minus the
// floor's.
//
// The way is broken into four parts per press: to-agent-µs, from typing
// the press to the agent reading it (its log line's read_at; one machine,
// one clock); durable-µs, the agent's own measure from reading the press
// to the record durable (durable_after); to-socket-µs, from there to the
// record's bytes crossing loopback towards the broker (the kernel's
// timestamp, read with a packet socket between presses: root only, else
// the part is left out); to-subscriber-µs, from there to the subscriber
// reading it.
func BenchmarkPressToBroker(b *testing.B) {
	m := mqtttest.StartMosquittoWith(b, mqtttest.Volatile, "")
	// The subscriber is apparatus: a minimal one on a raw socket unless
	// HALLRATE_BENCH_PAHO asks for paho's, as before 2026-12-03.
	got := rawArrivals(b, m.Port())
	if os.Getenv("HALLRATE_BENCH_PAHO") != "" {
		got = arrivals(b, m.URL())
	}
	wire, wired := captureLoopback(b, m.Port())
	dir := b.TempDir()
	a := startAgent(b, writeConfig(b, dir, "w05-a", m.URL(), ""))
	a.waitLog(1, wait, "connected to broker")
	fl, err := fsfloor.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	lat := make([]time.Duration, 0, b.N)
	floor := make([]time.Duration, 0, b.N)
	sent := make([]time.Time, b.N+1)
	recv := make([]time.Time, b.N+1)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		if wired {
			wire.drain()
		}
		d, err := fl.Measure()
		if err != nil {
			b.Fatal(err)
		}
		floor = append(floor, d)
		b.StartTimer()
		start := time.Now()
		a.press(1)
		for r := range got {
			if r.seq == uint64(i) {
				recv[i] = r.at
				break
			}
		}
		// The moment the subscriber read it, not the moment this loop
		// took it from the channel: the loop's wake is apparatus.
		lat = append(lat, recv[i].Sub(start))
		sent[i] = start
	}
	b.StopTimer()
	p50, floor50 := quantile.Of(lat, 0.5), quantile.Of(floor, 0.5)
	b.ReportMetric(quantile.Micros(p50), "p50-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.99)), "p99-µs")
	b.ReportMetric(quantile.Micros(floor50), "floor-p50-µs")
	b.ReportMetric(quantile.Micros(p50-floor50), "over-floor-µs")

	if wired {
		wire.drain()
	}
	presses := pressLines(b, a)
	var toAgent, toDurable, toSocket, toSub []time.Duration
	for i := 1; i <= b.N; i++ {
		pl, ok := presses[uint64(i)]
		if !ok {
			continue
		}
		toAgent = append(toAgent, pl.readAt.Sub(sent[i]))
		toDurable = append(toDurable, pl.durableAfter)
		if !wired {
			continue
		}
		if w, ok := wire.at(uint64(i)); ok {
			toSocket = append(toSocket, w.Sub(pl.readAt.Add(pl.durableAfter)))
			toSub = append(toSub, recv[i].Sub(w))
		}
	}
	b.ReportMetric(quantile.Micros(quantile.Of(toAgent, 0.5)), "to-agent-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(toDurable, 0.5)), "durable-µs")
	if wired && len(toSocket) > 0 {
		b.ReportMetric(quantile.Micros(quantile.Of(toSocket, 0.5)), "to-socket-µs")
		b.ReportMetric(quantile.Micros(quantile.Of(toSub, 0.5)), "to-subscriber-µs")
	} else if !wired {
		b.Log("no packet socket on lo (not root): the socket's part is left out")
	}
}

// pressLine is what the agent's log line of a press tells of its way.
type pressLine struct {
	readAt       time.Time
	durableAfter time.Duration
}

// pressLines reads each press's read_at and durable_after from the
// agent's log.
func pressLines(b testing.TB, a *agentProc) map[uint64]pressLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[uint64]pressLine{}
	for _, l := range a.lines {
		if !strings.Contains(l, "msg=press ") {
			continue
		}
		var seq uint64
		var pl pressLine
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "seq":
				seq, _ = strconv.ParseUint(v, 10, 64)
			case "read_at":
				pl.readAt, _ = time.Parse(time.RFC3339Nano, v)
			case "durable_after":
				pl.durableAfter, _ = time.ParseDuration(v)
			}
		}
		if seq > 0 && pl.durableAfter > 0 && !pl.readAt.IsZero() {
			out[seq] = pl
		}
	}
	return out
}

// TestProcessFigures measures the agent as a process: time from start to
// connected, idle memory (resident set, the binary's pages included) and
// CPU over 30 s connected to a broker, and bytes written to disk per press.
// It runs with HALLRATE_BENCH=1 (make bench) and prints a line per figure;
// HALLRATE_BENCH_IDLE changes the idle 30 s.
func TestProcessFigures(t *testing.T) {
	if os.Getenv("HALLRATE_BENCH") == "" {
		t.Skip("process figures run with HALLRATE_BENCH=1 (make bench)")
	}
	idle := 30 * time.Second
	if s := os.Getenv("HALLRATE_BENCH_IDLE"); s != "" {
		idle, _ = time.ParseDuration(s)
	}
	m := mqtttest.StartMosquittoWith(t, mqtttest.Volatile, "")
	sub := mqtttest.Subscribe(t, m.URL(), "figures-subscriber", prefix+"/#")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	dir := t.TempDir()
	conf := writeConfig(t, dir, "w05-a", m.URL(), "[http]\nlisten = \""+httpAddr+"\"\n")

	start := time.Now()
	a := startAgent(t, conf)
	a.waitLog(1, wait, "connected to broker")
	ready := time.Since(start)
	pid := a.cmd.Process.Pid
	fmt.Printf("figure: start to connected: %s\n", ready.Round(time.Millisecond))

	cpu0 := procCPU(t, pid)
	time.Sleep(idle) // the measurement itself: an idle agent, left alone
	cpu1 := procCPU(t, pid)
	ticks := float64(cpu1 - cpu0)
	fmt.Printf("figure: idle over %s connected: RSS %d bytes (%s), CPU %.2f%% of one core (%d clock ticks)\n",
		idle, 1024*rssKB(pid), rssParts(pid), 100*ticks/100/idle.Seconds(), cpu1-cpu0)

	const n = 500
	io0, dev0 := procIO(t, pid, "write_bytes"), deviceWritten(t, dir)
	buttons := make([]int, n)
	for i := range buttons {
		buttons[i] = i%4 + 1
	}
	a.press(buttons...)
	sub.Wait(t, time.Minute, "every press delivered", countDistinct(n))
	// The acknowledgements are deletes, written too: wait until the outbox
	// is empty as the local status endpoint reports it, and then for the
	// deletes to reach the file (at most buffer's AckDelay, 2 s, later).
	waitPendingZero(t, "http://"+httpAddr+"/status")
	time.Sleep(3 * time.Second)
	io1, dev1 := procIO(t, pid, "write_bytes"), deviceWritten(t, dir)
	fmt.Printf("figure: bytes written per press, %d presses in a row (record, binding state, acknowledgement), to the outbox's block device (its sectors written over the presses, by whoever wrote them): %d\n", n, (dev1-dev0)/n)
	fmt.Printf("figure: the same, as /proc/PID/io write_bytes counts the agent's writes: %d\n", (io1-io0)/n)
	fmt.Printf("figure: RSS right after those presses: %d bytes (%s)\n", 1024*rssKB(pid), rssParts(pid))
	time.Sleep(settle) // the measurement: the agent idle again
	fmt.Printf("figure: RSS %s later: %d bytes (%s)\n", settle, 1024*rssKB(pid), rssParts(pid))
}

// settle is how long after a burst the memory figures wait: past buffer's
// AckDelay and the agent's memory-return period.
const settle = 15 * time.Second

// TestBacklogFigures measures the agent's memory with a backlog of
// 100,000 records: it starts on an outbox that holds them, with the broker
// up, and its resident set is sampled until the outbox is empty. It runs
// with HALLRATE_BENCH=1 (make bench); filling the outbox takes a minute.
func TestBacklogFigures(t *testing.T) {
	if os.Getenv("HALLRATE_BENCH") == "" {
		t.Skip("backlog figures run with HALLRATE_BENCH=1 (make bench)")
	}
	const n = 100000
	dir := t.TempDir()
	// Filled in memory (tmpfs, where fdatasync costs nothing), then copied
	// to the disk the agent runs on: 100,000 commits on a disk take minutes.
	fillDir := dir
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if fillDir, err = os.MkdirTemp("/dev/shm", "hallrate-backlog-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(fillDir) })
	}
	o, err := buffer.Open(filepath.Join(fillDir, "outbox.db"), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 500) // a signed record is about 600 bytes
	for i := 0; i < n; i++ {
		if _, err := o.Append(func(s buffer.Slot) ([]byte, []byte, error) {
			return []byte(fmt.Sprintf(`{"v":1,"seq":%d,"pad":%q}`, s.Seq, pad)), nil, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if fillDir != dir {
		b, err := os.ReadFile(filepath.Join(fillDir, "outbox.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "outbox.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := mqtttest.StartMosquittoWith(t, mqtttest.Volatile, "")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	a := startAgent(t, writeConfig(t, dir, "w05-a", m.URL(), "[http]\nlisten = \""+httpAddr+"\"\n"))
	pid := a.cmd.Process.Pid
	a.waitLog(1, 2*time.Minute, "connected to broker")
	startPeak := procStatus(pid, "VmHWM:")
	afterOpen := rssKB(pid)
	peak := 0
	deadline := time.Now().Add(10 * time.Minute)
	for {
		peak = max(peak, rssKB(pid))
		var st struct{ Pending int64 }
		if resp, err := http.Get("http://" + httpAddr + "/status"); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Pending == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained in 10 minutes (pending %d)", st.Pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("figure: %d-record backlog, outbox file %d bytes: RSS at most %d bytes while opening it (VmHWM; the consistency check reads every page), %d bytes once open\n",
		n, fileSize(t, filepath.Join(dir, "outbox.db")), 1024*startPeak, 1024*afterOpen)
	fmt.Printf("figure: %d-record backlog: RSS at most %d bytes while draining it (sampled every 100 ms)\n", n, 1024*peak)
	time.Sleep(settle) // the measurement: the agent idle again
	fmt.Printf("figure: %d-record backlog: RSS %s after it drained: %d bytes (%s)\n", n, settle, 1024*rssKB(pid), rssParts(pid))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// rssParts is the resident set split as the kernel counts it: anonymous
// (heap, stacks) and file-backed (the binary's pages, the outbox's map).
func rssParts(pid int) string {
	return fmt.Sprintf("anonymous %d KiB, file %d KiB", procStatus(pid, "RssAnon:"), procStatus(pid, "RssFile:"))
}

// procStatus reads a KiB field of /proc/PID/status.
func procStatus(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func waitPendingZero(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var st struct{ Pending int64 }
		resp, err := http.Get(url)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err == nil && st.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not empty after %s: %v (pending %d)", wait, err, st.Pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deviceWritten returns the bytes written so far to the block device that
// holds dir (sectors written, /sys/dev/block/MAJ:MIN/stat), or -1 where
// there is none (tmpfs).
func deviceWritten(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return -1
	}
	sectors, _ := strconv.ParseInt(f[6], 10, 64)
	return 512 * sectors
}

// procIO reads one field of /proc/PID/io.
func procIO(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && k == field {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/io", field, pid)
	return 0
}

// procCPU returns utime+stime of a process in clock ticks (100 a second).
func procCPU(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
