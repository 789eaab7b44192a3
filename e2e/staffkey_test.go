package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// staffKeyConfig writes a sim agent's config with a short rating window, a
// staff member named for the terminal and debug logs, whose feedback lines
// show the "please rate" LED.
func staffKeyConfig(t *testing.T, broker string) string {
	t.Helper()
	path := writeConfig(t, t.TempDir(), "w05-a", broker, "\n[log]\nlevel = \"debug\"\n")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `driver = "sim"`, "driver = \"sim\"\nstaff = \"S9\"", 1)
	s = strings.Replace(s, `rating_window = "30s"`, `rating_window = "3s"`, 1)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// logTime returns the time= of the nth log line holding all parts.
func (a *agentProc) logTime(t *testing.T, n int, parts ...string) time.Time {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
next:
	for _, l := range a.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		if n--; n > 0 {
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, f)
		if err != nil {
			t.Fatalf("log line without a time: %s", l)
		}
		return at
	}
	t.Fatalf("no log line %d with %q", n, parts)
	return time.Time{}
}

// TestStaffKeySim drives the real agent's sim input: "i" is the staff's
// 请评价 key, which opens a rating window for a ticket made on the terminal.
func TestStaffKeySim(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-subscriber", prefix+"/#")
	a := startAgent(t, staffKeyConfig(t, m.URL()))
	a.waitLog(1, wait, "connected to broker")

	a.press(2) // no staff key, no ticket
	a.waitDurable(1, wait)
	type1 := func(line string) {
		t.Helper()
		if _, err := a.stdin.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	type1("i")
	a.waitLog(1, wait, "staff key: rating window open")
	a.waitLog(1, wait, "feedback: rating window", "open=true")
	a.press(1, 3) // counted, then repeat
	a.waitDurable(3, wait)

	// A second staff-key episode whose window is left to close: the LED
	// goes off, and a press then is late.
	type1("i")
	a.waitLog(2, wait, "staff key: rating window open")
	a.waitLog(2, wait, "feedback: rating window", "open=true")
	a.waitLog(2, wait, "feedback: rating window", "open=false")
	opened, closed := a.logTime(t, 2, "feedback: rating window", "open=true"), a.logTime(t, 2, "feedback: rating window", "open=false")
	if d := closed.Sub(opened); d < 3*time.Second {
		t.Fatalf("the staff-key window closed after %s, before binding.rating_window (3s)", d)
	}
	a.press(4)
	a.waitDurable(4, wait)

	// The queue system's ticket being served wins over the staff key.
	mqtttest.Publish(t, m.URL(), topics.ticket, 1, true, ticketJSON("A7", record.Serving))
	a.waitLog(1, wait, "msg=ticket", "ticket=A7")
	type1("i")
	a.waitLog(1, wait, "staff key ignored")
	a.press(2)

	d := assertComplete(t, sub.Wait(t, wait, "five records", countDistinct(5)), 5)
	if d[0].Disposition != record.NoTicket || d[0].Ticket != nil {
		t.Fatalf("a button with no staff key and no ticket: %+v", d[0])
	}
	want1 := "S-" + d[0].Epoch + "-1"
	c := d[1]
	if c.Disposition != record.Counted || c.Ticket == nil || c.Ticket.ID != want1 ||
		c.Ticket.Source != record.SourceStaff || c.Ticket.State != record.Done || c.Ticket.Staff != "S9" {
		t.Fatalf("first button after the staff key: %+v ticket %+v; want counted on %s, source staff, staff S9", c, c.Ticket, want1)
	}
	if r := d[2]; r.Disposition != record.Repeat || r.Ticket == nil || r.Ticket.ID != want1 {
		t.Fatalf("second button: %+v, want repeat on %s", r, want1)
	}
	if l := d[3]; l.Disposition != record.Late || l.Ticket == nil || l.Ticket.ID != "S-"+d[0].Epoch+"-2" {
		t.Fatalf("button after the window closed: %+v ticket %+v, want late on the second staff ticket", l, l.Ticket)
	}
	if q := d[4]; q.Disposition != record.Counted || q.Ticket == nil || q.Ticket.ID != "A7" || q.Ticket.Source != record.SourceQueue {
		t.Fatalf("queue ticket served: %+v ticket %+v, want counted on A7 from the queue", q, q.Ticket)
	}
}
