package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// notifySocket is a stand-in for systemd's notification socket: the agent
// finds it through NOTIFY_SOCKET and sends READY=1, WATCHDOG=1, STOPPING=1.
type notifySocket struct {
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T) (*notifySocket, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{conn: conn, msgs: make(chan string, 256)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n, path
}

// waitFor waits for a message that starts with prefix.
func (n *notifySocket) waitFor(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", prefix)
			}
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q on the notify socket within %s", prefix, wait)
		}
	}
}

// httpGet fetches url from the agent's status endpoint.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// eventually retries check until it returns "" or the deadline passes; it
// waits for the agent's state to change, not for a fixed time.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		<-tick.C
	}
}

// TestOperations runs the real agent under a stand-in for systemd, with its
// local status endpoint, and checks what hall IT staff would look at:
// READY and WATCHDOG, /healthz, /metrics, /status and "hallrate-agent
// status", online and with the broker gone.
func TestOperations(t *testing.T) {
	sub := mqtttest.NewCollector()
	b := mqtttest.StartEmbedded(t, sub.Add)
	mqtttest.Publish(t, b.URL(), topics.ticket, 1, true, ticketJSON("A023", record.Serving))

	notify, sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "1000000")
	listen := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	base := "http://" + listen
	cfg := writeConfig(t, t.TempDir(), "w05-a", b.URL(), fmt.Sprintf("\n[http]\nlisten = %q\n", listen))
	a := startAgent(t, cfg)

	notify.waitFor(t, "READY=1")
	notify.waitFor(t, "WATCHDOG=1")
	a.waitLog(1, wait, "msg=ticket", "ticket=A023")

	if code, body := httpGet(t, base+"/healthz"); code != 200 || !strings.HasPrefix(body, "ok") {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	a.press(1)
	sub.Wait(t, wait, "the record", countDistinct(1))
	eventually(t, "metrics after the press is acknowledged", func() string {
		_, body := httpGet(t, base+"/metrics")
		for _, want := range []string{
			`hallrate_agent_presses_total{disposition="counted"} 1`,
			"hallrate_agent_records_pending 0",
			"hallrate_agent_last_seq 1",
			"hallrate_agent_broker_connected 1",
			"hallrate_agent_records_acked_total 1",
			"hallrate_agent_healthy 1",
			"hallrate_agent_outbox_full 0",
			"hallrate_agent_ticket_messages_rejected_total 0",
			"hallrate_agent_buttons_stuck 0",
			"hallrate_agent_clock_synced ",
			"hallrate_agent_outbox_size_bytes ",
			"hallrate_agent_oldest_pending_age_seconds 0",
		} {
			if !strings.Contains(body, want) {
				return "no " + want
			}
		}
		return ""
	})

	_, body := httpGet(t, base+"/status")
	var st struct {
		Device    string `json:"device"`
		Healthy   bool   `json:"healthy"`
		Connected bool   `json:"connected"`
		Pending   int64  `json:"pending"`
		LastSeq   uint64 `json:"last_seq"`
		Ticket    *struct {
			ID string `json:"id"`
		} `json:"ticket"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v: %s", err, body)
	}
	if st.Device != "w05-a" || !st.Healthy || !st.Connected || st.Pending != 0 || st.LastSeq != 1 || st.Ticket == nil || st.Ticket.ID != "A023" {
		t.Fatalf("/status: %s", body)
	}

	out, err := runAgent(t, "status", "--config", cfg)
	if err != nil {
		t.Fatalf("status command: %v\n%s", err, out)
	}
	for _, want := range []string{"terminal  w05-a (hall h1, counter W05)", "health    ok", "broker    connected",
		"outbox    0 pending; last seq 1", "ticket    A023 serving", "clock     "} {
		if !strings.Contains(out, want) {
			t.Errorf("status command output lacks %q:\n%s", want, out)
		}
	}

	// The broker goes away: the press waits in the outbox, and the agent
	// stays healthy (and keeps feeding the watchdog).
	b.Kill()
	a.press(2)
	a.waitDurable(2, wait)
	eventually(t, "status with the broker gone", func() string {
		out, err := runAgent(t, "status", "--config", cfg)
		if err != nil {
			return fmt.Sprintf("status command: %v: %s", err, out)
		}
		for _, want := range []string{"broker    NOT connected", "outbox    1 pending, oldest ", "last seq 2"} {
			if !strings.Contains(out, want) {
				return "no " + want + " in\n" + out
			}
		}
		return ""
	})
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "hallrate_agent_records_pending 1\n") {
		t.Fatalf("metrics with one record pending:\n%s", body)
	}
	notify.waitFor(t, "WATCHDOG=1")

	a.stop()
	notify.waitFor(t, "STOPPING=1")
	out, err = runAgent(t, "status", "--config", cfg)
	if err == nil || !strings.Contains(out, "no agent answers on "+listen) {
		t.Fatalf("status command with the agent stopped: %v\n%s", err, out)
	}
}
