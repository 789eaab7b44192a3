package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/mqtttest"
)

func testConfig(broker string) Config {
	return Config{
		Broker:   broker,
		ClientID: "hallrate-agent-test",
		Inflight: 32,
		Topics:   CounterTopics("hallrate/v1", "h1", "W05"),
		Will:     []byte(`{"v":1,"online":false,"device":"test"}`),
		Status:   func(bool) []byte { return []byte(`{"v":1,"online":true,"device":"test"}`) },
	}
}

func fill(t testing.TB, o buffer.Outbox, n int) {
	t.Helper()
	payload := []byte(strings.Repeat("x", 400))
	for i := 0; i < n; i++ {
		if _, err := o.Append(func(buffer.Slot) ([]byte, []byte, error) { return payload, nil, nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// waitEmpty polls the outbox length; the uplink has no event for "drained".
func waitEmpty(t testing.TB, o buffer.Outbox, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for o.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d records after %s", o.Len(), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainInOrderAndTickets(t *testing.T) {
	c := mqtttest.NewCollector()
	b := mqtttest.StartEmbedded(t, c.Add)
	o, err := buffer.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if _, err := o.Append(func(s buffer.Slot) ([]byte, []byte, error) { return []byte(fmt.Sprint(s.Seq)), nil, nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	u := New(testConfig(b.URL()), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitEmpty(t, o, 10*time.Second)
	var seqs []string
	for _, m := range c.Messages() {
		if strings.HasSuffix(m.Topic, "/rating") {
			seqs = append(seqs, string(m.Payload))
		}
	}
	if len(seqs) != 100 || seqs[0] != "1" || seqs[99] != "100" {
		t.Fatalf("received %d records: %v", len(seqs), seqs)
	}
	for i, s := range seqs {
		if s != fmt.Sprint(i+1) {
			t.Fatalf("out of order at %d: %s", i, s)
		}
	}
	// Once the backlog is gone the status is refreshed, without waiting for
	// the status interval (a minute), so a loss audit sees nothing pending.
	c.Wait(t, 10*time.Second, "a status after the drain", func(ms []mqtttest.Message) bool {
		n := 0
		for _, m := range ms {
			if strings.HasSuffix(m.Topic, "/status") {
				n++
			}
		}
		return n >= 2
	})
	mqtttest.Publish(t, b.URL(), "hallrate/v1/h1/W05/ticket", 1, false, []byte("ticket-1"))
	select {
	case got := <-u.Tickets():
		if string(got) != "ticket-1" {
			t.Fatalf("ticket %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ticket delivered")
	}
	if s := u.Stats(); s.Acked != 100 || s.Connects != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// BenchmarkDrain10k measures how fast a backlog of 10,000 records leaves
// the bbolt outbox for Mosquitto on loopback, acknowledged.
func BenchmarkDrain10k(b *testing.B) { benchDrain(b, 10000) }

// BenchmarkDrain100k is the same for a backlog of 100,000 records, the
// default alarm threshold: filling it alone takes half a minute.
func BenchmarkDrain100k(b *testing.B) { benchDrain(b, 100000) }

func benchDrain(b *testing.B, n int) {
	m := mqtttest.StartMosquittoWith(b, mqtttest.Volatile, "")
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		o, err := buffer.Open(filepath.Join(b.TempDir(), fmt.Sprintf("outbox-%d.db", i)), buffer.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fill(b, o, n)
		u := New(testConfig(m.URL()), o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { _ = u.Run(ctx); close(done) }()
		waitEmpty(b, o, 5*time.Minute)
		total += time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		o.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
}

// A ticket amid a flood of junk, with nobody reading meanwhile, is the one
// handed over next; of several good ones, the newest.
func TestTicketHandOffKeepsTheNewest(t *testing.T) {
	u := New(Config{AcceptTicket: func(p []byte) error {
		if !bytes.HasPrefix(p, []byte("good")) {
			return errors.New("junk")
		}
		return nil
	}}, nil)
	for range 1500 {
		u.ticket([]byte("junk"))
	}
	u.ticket([]byte("good-MID3"))
	for range 1500 {
		u.ticket([]byte("junk"))
	}
	if got := string(<-u.Tickets()); got != "good-MID3" {
		t.Fatalf("handed over %q, want good-MID3", got)
	}
	select {
	case p := <-u.Tickets():
		t.Fatalf("a second message %q handed over", p)
	default:
	}
	for i := range 100 {
		u.ticket(fmt.Appendf(nil, "good-%d", i))
	}
	if got := string(<-u.Tickets()); got != "good-99" {
		t.Fatalf("handed over %q, want the newest, good-99", got)
	}
	if s := u.Stats(); s.TicketDropped != 99 {
		t.Fatalf("TicketDropped = %d, want 99 superseded", s.TicketDropped)
	}
}
