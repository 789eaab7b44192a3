package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/internal/quantile"
)

// arrivals subscribes to the rating topic and delivers each record's seq.
func arrivals(b testing.TB, broker string) <-chan uint64 {
	b.Helper()
	ch := make(chan uint64, 1024)
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-subscriber"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber: %v", tok.Error())
	}
	b.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.Subscribe(topics.rating, 1, func(_ mqtt.Client, m mqtt.Message) {
		var r struct{ Seq uint64 }
		if json.Unmarshal(m.Payload(), &r) == nil {
			ch <- r.Seq
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	return ch
}

// BenchmarkPressToBroker is the online path of one press through the real
// agent binary: typed on its input, bound, made durable, published, and
// received by a subscriber of Mosquitto on loopback.
func BenchmarkPressToBroker(b *testing.B) {
	m := mqtttest.StartMosquittoWith(b, mqtttest.Volatile, "")
	got := arrivals(b, m.URL())
	a := startAgent(b, writeConfig(b, b.TempDir(), "w05-a", m.URL(), ""))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		start := time.Now()
		a.press(1)
		for seq := range got {
			if seq == uint64(i) {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.5)), "p50-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.99)), "p99-µs")
}

// TestProcessFigures measures the agent as a process: time from start to
// connected, idle memory and CPU over a minute, and bytes written to disk
// per press. It runs with HALLRATE_BENCH=1 (make bench) and prints a line
// per figure; HALLRATE_BENCH_IDLE shortens the idle minute.
func TestProcessFigures(t *testing.T) {
	if os.Getenv("HALLRATE_BENCH") == "" {
		t.Skip("process figures run with HALLRATE_BENCH=1 (make bench)")
	}
	idle := time.Minute
	if s := os.Getenv("HALLRATE_BENCH_IDLE"); s != "" {
		idle, _ = time.ParseDuration(s)
	}
	m := mqtttest.StartMosquittoWith(t, mqtttest.Volatile, "")
	sub := mqtttest.Subscribe(t, m.URL(), "figures-subscriber", prefix+"/#")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	conf := writeConfig(t, t.TempDir(), "w05-a", m.URL(), "[http]\nlisten = \""+httpAddr+"\"\n")

	start := time.Now()
	a := startAgent(t, conf)
	a.waitLog(1, wait, "connected to broker")
	ready := time.Since(start)
	pid := a.cmd.Process.Pid

	const n = 500
	io0 := procIO(t, pid, "write_bytes")
	buttons := make([]int, n)
	for i := range buttons {
		buttons[i] = i%4 + 1
	}
	a.press(buttons...)
	sub.Wait(t, time.Minute, "every press delivered", countDistinct(n))
	// The acknowledgements are deletes, written too: wait until the outbox
	// is empty, as the local status endpoint reports it.
	waitPendingZero(t, "http://"+httpAddr+"/status")
	io1 := procIO(t, pid, "write_bytes")

	cpu0 := procCPU(t, pid)
	time.Sleep(idle) // the measurement itself: an idle agent, left alone
	cpu1 := procCPU(t, pid)
	rss := rssKB(pid)

	ticks := float64(cpu1 - cpu0)
	fmt.Printf("figure: start to connected: %s\n", ready.Round(time.Millisecond))
	fmt.Printf("figure: bytes written per press (record, binding state, acknowledgement): %d\n", (io1-io0)/n)
	fmt.Printf("figure: idle over %s: RSS %d KiB, CPU %.2f%% of one core (%d clock ticks)\n",
		idle, rss, 100*ticks/100/idle.Seconds(), cpu1-cpu0)
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
