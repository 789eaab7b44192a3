package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
)

// TestStoredAcknowledgement: the collector publishes, per terminal,
// retained, which of its records are stored; read with mosquitto_sub, a
// client nobody here wrote.
func TestStoredAcknowledgement(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	conf := filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `[hall]
id = "h1"
timezone = "UTC"
[mqtt]
broker = %q
client_id = "collector-stored"
[store]
dsn = "sqlite://%s"
[http]
listen = %q
[esup]
sink = "none"
`, broker.URL(), filepath.Join(dir, "collector.db"), apiAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, "http://"+apiAddr+"/healthz", 200, c.String) // subscribed

	a := startAgent(t, hallAgentConfig(t, dir, "w05-a", "W05", broker.URL()))
	a.press(1, 2, 3)
	a.waitDurable(3, wait)
	deadline := time.Now().Add(wait)
	for {
		got := mosquittoSub(t, broker.Port(), 1, "-t", "hallrate/v1/h1/W05/stored")[0]
		var m struct {
			V          int      `json:"v"`
			Device     string   `json:"device"`
			Epoch      string   `json:"epoch"`
			ThroughSeq uint64   `json:"through_seq"`
			Missing    []uint64 `json:"missing"`
		}
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("stored message %q: %v", got, err)
		}
		if m.V == 1 && m.Device == "w05-a" && len(m.Epoch) == 8 && m.ThroughSeq == 3 && m.Missing != nil && len(m.Missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored message %s, want through_seq 3 and no missing seq\n%s", got, c.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storedIDs returns how often each record id of device is stored, from
// the collector's API.
func storedIDs(t *testing.T, api, device string) map[string]int {
	t.Helper()
	code, body := httpDo(t, "GET", api+"/api/v1/ratings?limit=1000", "")
	if code != 200 {
		t.Fatalf("ratings: %d %s", code, body)
	}
	var rs struct {
		Ratings []struct {
			ID     string `json:"id"`
			Device string `json:"device"`
		} `json:"ratings"`
	}
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		t.Fatalf("ratings: %v: %s", err, body)
	}
	ids := map[string]int{}
	for _, r := range rs.Ratings {
		if r.Device == device {
			ids[r.ID]++
		}
	}
	return ids
}

// waitStored waits until the collector holds n records of device, each
// once.
func waitStored(t *testing.T, api, device string, n int, timeout time.Duration, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids := storedIDs(t, api, device)
		for id, k := range ids {
			if k != 1 {
				t.Fatalf("record %s stored %d times", id, k)
			}
		}
		if len(ids) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records of %s stored after %s\n%s", len(ids), n, device, timeout, what())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// confirmAgent is an agent configuration that resends what the hall lacks
// after 2 s instead of 30, with its status endpoint; it returns the
// configuration's path and the endpoint's /status URL.
func confirmAgent(t *testing.T, dir, broker, mqttExtra string) (string, string) {
	t.Helper()
	path := hallAgentConfig(t, dir, "w05-a", "W05", broker)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	conf := strings.Replace(string(b), "[buffer]\n", "[buffer]\nconfirm_wait = \"2s\"\n", 1)
	conf = strings.Replace(conf, "[mqtt]\n", "[mqtt]\n"+mqttExtra, 1)
	conf += fmt.Sprintf("\n[http]\nlisten = %q\n", addr)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, "http://" + addr + "/status"
}

// agentStatus is what the tests read of the agent's /status.
type agentStatus struct {
	Pending     int64 `json:"pending"`
	Unconfirmed int64 `json:"unconfirmed"`
	Resent      int64 `json:"resent"`
}

// waitAgentStatus polls the agent's /status until ok holds.
func waitAgentStatus(t *testing.T, url string, timeout time.Duration, what string, ok func(agentStatus) bool) agentStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st agentStatus
	for {
		code, body := httpDo(t, "GET", url, "")
		if code == 200 {
			st = agentStatus{}
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatalf("agent status: %v: %s", err, body)
			}
			if ok(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent status: %s not within %s; last %+v", what, timeout, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestQueueLimitLosesNothing: the broker keeps at most 10 messages for the
// collector's offline session and drops the rest, each PUBACKed to the
// terminal first. The terminal keeps what the hall has not confirmed and
// publishes it again once the collector is back: all 50 presses are
// stored, each once.
func TestQueueLimitLosesNothing(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "max_queued_messages 10\n")
	bin := buildCollector(t)
	dir := t.TempDir()
	conf, apiAddr := hallConf{ClientID: "collector-queue-limit", Broker: broker.URL(), MQTT: `stored_every = "1s"`}.write(t, dir)
	api := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)

	agentConf, status := confirmAgent(t, t.TempDir(), broker.URL(), "")
	a := startAgent(t, agentConf)
	a.press(1, 2)
	waitStored(t, api, "w05-a", 2, wait, c.String)

	// The collector away; its session stays on the broker, which queues
	// ten of what comes and drops the rest.
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(wait):
		t.Fatalf("collector did not stop:\n%s", c.String())
	}
	buttons := make([]int, 50)
	for i := range buttons {
		buttons[i] = i%4 + 1
	}
	a.press(buttons...)
	a.waitDurable(52, wait)
	// Every one of them acknowledged by the broker, none confirmed (nor,
	// maybe, the last of the first two: the collector stopped within a
	// second of storing it).
	waitAgentStatus(t, status, wait, "52 acknowledged, 50 unconfirmed", func(s agentStatus) bool {
		return s.Pending == 0 && s.Unconfirmed >= 50
	})
	c = startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)
	waitStored(t, api, "w05-a", 52, time.Minute, func() string { return c.String() + "\nagent:\n" + a.logWithout("msg=press ") })
	// 40 were dropped by the broker and published again; the hall's
	// confirmation empties what was kept.
	st := waitAgentStatus(t, status, wait, "all confirmed", func(s agentStatus) bool { return s.Unconfirmed == 0 })
	if st.Resent < 40 {
		t.Fatalf("the agent published %d records again; the broker dropped 40:\n%s", st.Resent, a.logWithout("msg=press "))
	}
}

// TestACLRefusalLosesNothing: a broker whose ACL refuses the terminal's
// rating topic still PUBACKs each publish (MQTT 3.1.1) and drops it. The
// records wait for the hall's confirmation, are published again, and are
// stored once the ACL allows them.
func TestACLRefusalLosesNothing(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	writeACL := func(rating bool) {
		rules := "user collector\ntopic readwrite hallrate/#\n\nuser w05-a\n" +
			"topic write hallrate/v1/h1/W05/status\ntopic read hallrate/v1/h1/W05/ticket\ntopic read hallrate/v1/h1/W05/stored\n"
		if rating {
			rules += "topic write hallrate/v1/h1/W05/rating\n"
		}
		if err := os.WriteFile(acl, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeACL(false)
	broker := mqtttest.StartMosquitto(t, fmt.Sprintf("acl_file %s\n", acl))
	bin := buildCollector(t)
	conf, apiAddr := hallConf{ClientID: "collector-acl-refusal", Broker: broker.URL(),
		MQTT: "username = \"collector\"\nstored_every = \"1s\""}.write(t, dir)
	api := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)

	agentConf, status := confirmAgent(t, t.TempDir(), broker.URL(), "username = \"w05-a\"\n")
	a := startAgent(t, agentConf)
	a.press(1, 2, 3, 4, 1)
	a.waitDurable(5, wait)
	// Refused, acknowledged, and published again while refused: the
	// broker is still dropping them.
	a.waitLog(2, time.Minute, "published again")
	if ids := storedIDs(t, api, "w05-a"); len(ids) != 0 {
		t.Fatalf("stored %v through an ACL that refuses the rating topic", ids)
	}
	writeACL(true)
	broker.Reload()
	waitStored(t, api, "w05-a", 5, time.Minute, func() string { return c.String() + "\nagent:\n" + a.logWithout("msg=press ") })
	waitAgentStatus(t, status, wait, "all confirmed", func(s agentStatus) bool { return s.Unconfirmed == 0 && s.Pending == 0 })
}
