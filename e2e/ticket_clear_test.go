package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestEmptyRetainedTicketClears: the usual MQTT way to clear a retained
// message, a zero-length retained publish (mosquitto_pub -r -n), clears the
// counter like idle: the next press has no ticket. A ticket whose at is not
// RFC 3339 with an offset is refused with a line naming the field, and
// changes nothing.
func TestEmptyRetainedTicketClears(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "e2e-clear-observer", topics.rating)
	a := startAgent(t, writeConfig(t, t.TempDir(), "w05-a", m.URL(), ""))
	mosquittoPub(t, m.Port(), "-t", topics.ticket, "-q", "1", "-r", "-m",
		`{"v":1,"ticket":"A1","state":"serving","staff":"S017","at":"2026-11-24T09:15:00+08:00"}`)
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	mosquittoPub(t, m.Port(), "-t", topics.ticket, "-q", "1", "-r", "-m",
		`{"v":1,"ticket":"A2","state":"serving","staff":"S017","at":"yesterday"}`)
	a.waitLog(1, wait, "ticket message rejected", `at: \"yesterday\" is not RFC 3339 with an offset`)
	a.press(1)
	mosquittoPub(t, m.Port(), "-t", topics.ticket, "-q", "1", "-r", "-n")
	a.waitLog(1, wait, "msg=ticket", "state=idle")
	a.press(2)
	d := assertComplete(t, sub.Wait(t, wait, "two records", countDistinct(2)), 2)
	if d[0].Disposition != record.Counted || d[0].Ticket == nil || d[0].Ticket.ID != "A1" {
		t.Fatalf("press before the clear, with the refused A2 ignored: %+v", d[0])
	}
	if d[1].Disposition != record.NoTicket || d[1].Ticket != nil {
		t.Fatalf("press after the empty retained ticket: %+v", d[1])
	}
	// Nothing retained is left for the next subscriber: mosquitto_sub
	// times out (exit status 27) without a message.
	out, err := exec.Command(mosquittoClient(t, "mosquitto_sub"), "-h", "127.0.0.1", "-p", fmt.Sprint(m.Port()),
		"-t", topics.ticket, "-C", "1", "-W", "1").Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 27 || len(out) != 0 {
		t.Fatalf("a ticket is still retained: %q %v", out, err)
	}
}
