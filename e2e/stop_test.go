package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestCleanStopStatus: kill -TERM of the real agent leaves a retained
// offline status with epoch, last_seq, pending and stopped_at, read
// afterwards with mosquitto_sub by a consumer that was not there at the stop.
func TestCleanStopStatus(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	conf := writeConfig(t, t.TempDir(), "w05-a", m.URL(), "")
	mqtttest.Publish(t, m.URL(), topics.ticket, 1, true, ticketJSON("A1", record.Serving))
	a := startAgent(t, conf)
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	a.press(1, 2)
	a.waitDurable(2, wait)
	st := waitRetainedStatus(t, m.Port(), func(s record.Status) bool {
		return s.Online && s.LastSeq != nil && *s.LastSeq == 2 && s.Pending != nil && *s.Pending == 0
	})
	a.stop() // SIGTERM, and a clean exit
	off := waitRetainedStatus(t, m.Port(), func(s record.Status) bool { return !s.Online })
	if off.Epoch != st.Epoch || off.LastSeq == nil || *off.LastSeq != 2 || off.Pending == nil || *off.Pending != 0 {
		t.Fatalf("offline status of a clean stop: %+v", off)
	}
	if _, err := time.Parse(time.RFC3339Nano, off.StoppedAt); err != nil {
		t.Fatalf("stopped_at %q: %v", off.StoppedAt, err)
	}
}

// waitRetainedStatus reads the retained status with mosquitto_sub until
// ok holds.
func waitRetainedStatus(t *testing.T, port int, ok func(record.Status) bool) record.Status {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		// -C 1 with -R would skip retained messages: a fresh subscriber
		// gets the retained status first.
		lines := mosquittoSub(t, port, 1, "-t", topics.status, "-W", "10")
		var s record.Status
		if err := json.Unmarshal([]byte(lines[0]), &s); err != nil {
			t.Fatalf("status %q: %v", lines[0], err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("retained status never matched: %s", lines[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
