package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestTicketFloodNewestWins floods the counter's ticket topic of a real
// Mosquitto with Debian's mosquitto_pub: 1,500 junk messages, the ticket
// MID3, 1,500 more junk. The real agent keeps the newest good ticket in its
// one-slot hand-off, so the next press is counted against MID3, not the
// ticket before it. Presses keep the agent's loop busy (a durable write
// each) during the flood, as a slow terminal is.
func TestTicketFloodNewestWins(t *testing.T) {
	bin := mosquittoClient(t, "mosquitto_pub")
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-subscriber", prefix+"/#")
	status := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	a := startAgent(t, writeConfig(t, t.TempDir(), "w05-a", m.URL(), fmt.Sprintf("\n[http]\nlisten = %q\n", status)))
	a.waitLog(1, wait, "connected to broker")
	mqtttest.Publish(t, m.URL(), topics.ticket, 1, false, ticketJSON("MID2", record.Serving))
	a.waitLog(1, wait, "msg=ticket", "ticket=MID2")

	junk := []string{
		"not json",
		`{"v":1,"ticket":42,"state":"serving"}`,
		`{"v":2,"ticket":"J1","state":"serving"}`,
		`{"v":1,"state":"done"}`,
		`{"v":1,"ticket":"J2","state":"paused"}`,
		`{"v":1,"ticket":"J3\u0000","state":"serving"}`,
	}
	var in bytes.Buffer
	for i := range 1500 {
		in.WriteString(junk[i%len(junk)] + "\n")
	}
	in.Write(ticketJSON("MID3", record.Serving))
	in.WriteString("\n")
	for i := range 1500 {
		in.WriteString(junk[i%len(junk)] + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, port, _ := strings.Cut(m.Addr(), ":")
	// -l: one message a line of stdin, in order, QoS 1.
	pub := exec.CommandContext(ctx, bin, "-h", "127.0.0.1", "-p", port, "-V", "mqttv311", "-q", "1", "-t", topics.ticket, "-l")
	pub.Stdin = &in
	const busy = 300
	buttons := make([]int, busy)
	for i := range buttons {
		buttons[i] = 1 + i%4
	}
	a.press(buttons...)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	// Every junk message is refused: wait until the agent counted all 3,000.
	rejected := regexp.MustCompile(`(?m)^hallrate_agent_ticket_messages_rejected_total (\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for {
		resp, err := http.Get("http://" + status + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := rejected.FindSubmatch(b); m != nil {
				last = string(m[1])
			}
		}
		if last == "3000" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent counted %q of 3000 junk ticket messages within 30s:\n%s", last, a.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitOutcomes(busy, 60*time.Second)
	a.press(1)
	d := assertComplete(t, sub.Wait(t, 60*time.Second, "every record", countDistinct(busy+1)), busy+1)
	next := d[len(d)-1]
	if next.Ticket == nil || next.Ticket.ID != "MID3" {
		t.Fatalf("the press after the flood was bound to %+v, want MID3", next.Ticket)
	}
	if n := a.count("ticket message rejected"); n > 30 {
		t.Errorf("%d log lines for 3000 junk messages", n)
	}
}
