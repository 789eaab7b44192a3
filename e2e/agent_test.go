package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

const wait = 30 * time.Second

// setup starts a broker of the given kind and a subscriber to everything
// under the prefix.
type setup func(t *testing.T) (mqtttest.Broker, *mqtttest.Collector)

func brokers() map[string]setup {
	return map[string]setup{
		"mosquitto": func(t *testing.T) (mqtttest.Broker, *mqtttest.Collector) {
			m := mqtttest.StartMosquitto(t, "")
			return m, mqtttest.Subscribe(t, m.URL(), "e2e-subscriber", prefix+"/#")
		},
		"embedded": func(t *testing.T) (mqtttest.Broker, *mqtttest.Collector) {
			c := mqtttest.NewCollector()
			return mqtttest.StartEmbedded(t, c.Add), c
		},
		"nats": func(t *testing.T) (mqtttest.Broker, *mqtttest.Collector) {
			n := mqtttest.StartNATS(t)
			return n, mqtttest.Subscribe(t, n.URL(), "e2e-subscriber", prefix+"/#")
		},
		"rabbitmq": func(t *testing.T) (mqtttest.Broker, *mqtttest.Collector) {
			r := mqtttest.StartRabbitMQ(t)
			return r, mqtttest.Subscribe(t, r.URL(), "e2e-subscriber", prefix+"/#")
		},
	}
}

func forEachBroker(t *testing.T, f func(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector)) {
	for name, s := range brokers() {
		t.Run(name, func(t *testing.T) {
			b, sub := s(t)
			f(t, b, sub)
		})
	}
}

func TestOnlinePress(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector) {
		mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A023", record.Serving))
		a := startAgent(t, writeConfig(t, t.TempDir(), "w05-a", b.URL(), ""))
		a.waitLog(1, wait, "msg=ticket", "ticket=A023")
		a.press(1, 4)
		msgs := sub.Wait(t, wait, "two records", countDistinct(2))
		d := assertComplete(t, msgs, 2)
		p := d[0]
		if p.Device != "w05-a" || p.Hall != hall || p.Counter != counter || p.Button != 1 ||
			p.Label != "very_satisfied" || p.Satisfaction != 5 || p.Disposition != record.Counted ||
			p.Ticket == nil || p.Ticket.ID != "A023" || p.Ticket.Staff != "S017" || p.BootID == "" || p.UptimeMS <= 0 {
			t.Fatalf("first record wrong: %+v", p)
		}
		if _, err := time.Parse(time.RFC3339Nano, p.PressedAt); err != nil {
			t.Fatal(err)
		}
		if q := d[1]; q.Disposition != record.Repeat || q.Satisfaction != 2 || q.Label != "dissatisfied" {
			t.Fatalf("second press on the same ticket: %+v", q)
		}
		// The retained status says online, then offline after a clean stop.
		// It carries the key that verifies every record.
		for _, m := range sub.Wait(t, wait, "online status", hasStatus(true)) {
			var s record.Status
			if m.Topic != topics.status || json.Unmarshal(m.Payload, &s) != nil || !s.Online {
				continue
			}
			pub, err := record.DecodePublicKey(s.PubKey)
			if err != nil {
				t.Fatalf("status pubkey: %v", err)
			}
			for _, p := range d {
				if err := p.Verify(pub); err != nil {
					t.Fatalf("record %s: %v", p.ID, err)
				}
			}
		}
		a.stop()
		sub.Wait(t, wait, "offline status after a clean stop", hasStatus(false))
	})
}

func hasStatus(online bool) func([]mqtttest.Message) bool {
	return func(msgs []mqtttest.Message) bool {
		for _, m := range msgs {
			var s record.Status
			if m.Topic == topics.status && json.Unmarshal(m.Payload, &s) == nil && s.Online == online && s.Device == "w05-a" {
				return true
			}
		}
		return false
	}
}

func TestBrokerOutage(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector) {
		a := startAgent(t, writeConfig(t, t.TempDir(), "w05-a", b.URL(), ""))
		a.waitLog(1, wait, "connected to broker")
		a.press(1)
		sub.Wait(t, wait, "first record", countDistinct(1))
		b.Kill()
		a.press(1, 2, 3, 2, 1)
		a.waitDurable(6, wait)
		b.Start()
		msgs := sub.Wait(t, wait, "all six records after the outage", countDistinct(6))
		d := assertComplete(t, msgs, 6)
		for _, p := range d {
			if p.Disposition != record.NoTicket || p.Ticket != nil {
				t.Fatalf("without a ticket every press is no_ticket: %+v", p)
			}
		}
	})
}

func TestKill9AndRestart(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector) {
		dir := t.TempDir()
		conf := writeConfig(t, dir, "w05-a", b.URL(), "")
		mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A1", record.Serving))
		a := startAgent(t, conf)
		a.waitLog(1, wait, "msg=ticket", "ticket=A1")
		a.press(1, 2, 3, 4)
		sub.Wait(t, wait, "4 records", countDistinct(4))
		// With the broker gone the next presses stay in the outbox, and
		// the agent dies with them there.
		b.Kill()
		a.press(1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4)
		a.waitDurable(20, wait)
		a.kill()
		b.Start()
		mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A1", record.Serving))
		a = startAgent(t, conf)
		a.waitLog(1, wait, "msg=ticket", "ticket=A1")
		// The ticket was rated before the crash: still rated after it.
		a.press(1)
		a.waitDurable(1, wait)
		msgs := sub.Wait(t, wait, "21 records", countDistinct(21))
		d := assertComplete(t, msgs, 21)
		counted := 0
		for _, p := range d {
			if p.Disposition == record.Counted {
				counted++
			}
		}
		if counted != 1 || d[0].Disposition != record.Counted || d[20].Disposition != record.Repeat {
			t.Fatalf("want exactly the first press counted, got %d counted; last %s", counted, d[20].Disposition)
		}
	})
}

// TestBrokerKilledMidDrain kills Mosquitto while a backlog of 1,000
// records is being drained: acknowledgements that a dying connection seems
// to give must not remove anything the broker did not keep. Mosquitto
// itself PUBACKs a message before its next save, so a kill -9 can lose one
// it acknowledged: the test acknowledges what its subscriber received as
// the collector would (the stored topic), and the terminal publishes again
// what the hall lacks.
func TestBrokerKilledMidDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-drain-subscriber", prefix+"/#")
	m.Stop() // saves the subscriber's session
	conf := writeConfig(t, t.TempDir(), "w05-a", m.URL(), "")
	setConfig(t, conf, "[buffer]\n", "confirm_wait = \"2s\"\n")
	a := startAgent(t, conf)
	const n = 1000
	buttons := make([]int, n)
	for i := range buttons {
		buttons[i] = i%4 + 1
	}
	a.press(buttons...)
	a.waitDurable(n, 2*time.Minute)
	m.Start()
	sub.Wait(t, time.Minute, "part of the backlog", countDistinct(200))
	m.Kill()
	m.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log without presses:\n%s", a.logWithout("msg=press "))
			got := map[uint64]bool{}
			for _, p := range presses(t, sub.Messages()) {
				got[p.Seq] = true
			}
			var missing []uint64
			for s := uint64(1); s <= n; s++ {
				if !got[s] {
					missing = append(missing, s)
				}
			}
			t.Logf("missing seqs: %v", missing)
		}
	})
	msgs := hallAcknowledges(t, m.URL(), sub, "w05-a", n, time.Minute)
	assertComplete(t, msgs, n)
	t.Logf("%d messages received for %d records", len(presses(t, msgs)), n)
}

// setConfig adds lines to a section of the configuration file at path.
func setConfig(t testing.TB, path, section, lines string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), section) {
		t.Fatalf("%s has no %q", path, section)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), section, section+lines, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hallAcknowledges plays the collector's stored acknowledgement for
// device from what sub received, twice a second, until sub has n distinct
// records of it or timeout passes.
func hallAcknowledges(t *testing.T, broker string, sub *mqtttest.Collector, device string, n int, timeout time.Duration) []mqtttest.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := sub.Messages()
		if countDistinct(n)(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d distinct records after %s, want %d", len(distinct(t, presses(t, msgs))), timeout, n)
		}
		seen := map[uint64]bool{}
		ack := record.Stored{V: record.Version, Device: device, Missing: []uint64{}}
		for _, p := range presses(t, msgs) {
			seen[p.Seq] = true
			ack.Epoch, ack.HighestSeq = p.Epoch, max(ack.HighestSeq, p.Seq)
		}
		for seen[ack.ThroughSeq+1] {
			ack.ThroughSeq++
		}
		for s := ack.ThroughSeq + 1; s < ack.HighestSeq && len(ack.Missing) < 1000; s++ {
			if !seen[s] {
				ack.Missing = append(ack.Missing, s)
			}
		}
		if ack.Epoch != "" {
			payload, _ := json.Marshal(ack)
			mqtttest.Publish(t, broker, prefix+"/"+hall+"/"+counter+"/stored", 1, true, payload)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestMalformedTickets(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b mqtttest.Broker, sub *mqtttest.Collector) {
		a := startAgent(t, writeConfig(t, t.TempDir(), "w05-a", b.URL(), ""))
		a.waitLog(1, wait, "connected to broker")
		mqtttest.Publish(t, b.URL(), topics.ticket, 1, false, ticketJSON("A7", record.Serving))
		a.waitLog(1, wait, "msg=ticket", "ticket=A7")
		bad := [][]byte{
			[]byte("not json"),
			[]byte(`{"v":1,"ticket":42,"state":"serving"}`),
			[]byte(`{"v":2,"ticket":"B1","state":"serving"}`),
			[]byte(`{"v":1,"state":"done"}`),
			[]byte(`{"v":1,"ticket":"B2","state":"paused"}`),
			[]byte(`{"v":1,"ticket":"B3","state":"serving","item":"` + strings.Repeat("x", 200000) + `"}`),
			{0xff, 0xfe, 0x00},
			// A zero-length message is no longer malformed: it clears the
			// counter like idle (TestEmptyRetainedTicketClears).
		}
		for _, p := range bad {
			mqtttest.Publish(t, b.URL(), topics.ticket, 1, false, p)
		}
		a.waitLog(len(bad), wait, "ticket message rejected")
		a.press(2)
		d := assertComplete(t, sub.Wait(t, wait, "a record", countDistinct(1)), 1)
		if d[0].Disposition != record.Counted || d[0].Ticket == nil || d[0].Ticket.ID != "A7" {
			t.Fatalf("malformed tickets changed the binding: %+v", d[0])
		}
	})
}

func TestBadConfigOneLine(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, "w05-a", "tcp://127.0.0.1:1", "[mqtt2]\nx = 1\n")
	out, err := runAgent(t, "run", "--config", conf)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "mqtt2") {
		t.Fatalf("want one line naming the key, got %q", out)
	}
}

func TestDeviceKey(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, "w05-a", "tcp://127.0.0.1:1", "")
	out, err := runAgent(t, "pubkey", "--config", conf)
	if err != nil {
		t.Fatalf("pubkey: %v: %s", err, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "w05-a" {
		t.Fatalf("pubkey printed %q", out)
	}
	if _, err := record.DecodePublicKey(f[1]); err != nil {
		t.Fatal(err)
	}
	again, _ := runAgent(t, "pubkey", "--config", conf)
	if again != out {
		t.Fatalf("key changed between runs: %q then %q", out, again)
	}
	// A key others can read no longer proves who made a record.
	if err := os.Chmod(filepath.Join(dir, "device.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runAgent(t, "run", "--config", conf)
	if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "device.key_file") || !strings.Contains(out, "chmod 600") {
		t.Fatalf("readable key: want one line refusing it, got %v: %q", err, out)
	}
}

// TestKill9WithPressesInTheJournal kills the real agent right after its
// presses are durable, before the outbox's journal is folded into its file
// (2 s later): the restarted agent takes them from the journal, says so,
// and delivers each.
func TestKill9WithPressesInTheJournal(t *testing.T) {
	dir := t.TempDir()
	// No broker yet: the presses stay in the outbox.
	nowhere := fmt.Sprintf("tcp://127.0.0.1:%d", mqtttest.FreePort(t))
	a := startAgent(t, writeConfig(t, dir, "w05-a", nowhere, ""))
	a.press(1, 2, 4)
	a.waitDurable(3, wait)
	a.kill()
	if fi, err := os.Stat(filepath.Join(dir, "outbox.db.journal")); err != nil || fi.Size() == 0 {
		t.Fatalf("no journal beside the outbox: %v", err)
	}

	c := mqtttest.NewCollector()
	b := mqtttest.StartEmbedded(t, c.Add)
	a = startAgent(t, writeConfig(t, dir, "w05-a", b.URL(), ""))
	a.waitLog(1, wait, "records taken into the outbox after an unclean stop", "count=3", "first_seq=1", "last_seq=3")
	got := assertComplete(t, c.Wait(t, wait, "the 3 presses", countDistinct(3)), 3)
	if got[0].Button != 1 || got[1].Button != 2 || got[2].Button != 4 {
		t.Fatalf("buttons %d %d %d, want 1 2 4", got[0].Button, got[1].Button, got[2].Button)
	}
	a.press(3)
	if d := assertComplete(t, c.Wait(t, wait, "the next press", countDistinct(4)), 4); d[3].Seq != 4 {
		t.Fatalf("the next press has seq %d, want 4", d[3].Seq)
	}
}
