package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/sysclock"
)

// clockSynced reports what the agent will put in clock_synced on this
// machine.
func clockSynced(t *testing.T) bool {
	t.Helper()
	c, err := sysclock.NewSystem("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return c.Synced()
}

// curl runs Debian's curl and returns the status code and body.
func curl(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	args := []string{"-sS", "-X", method, "-H", "Content-Type: application/json", "-w", "\n%{http_code}", url}
	if body != "" {
		args = append(args, "--data-binary", body)
	}
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", method, url, err)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:max(i, 0)]
}

// TestTicketGateway: a queue system that can only call a URL POSTs its
// ticket to the collector, which publishes it for a real agent; the press
// is counted against it and joins its case.
func TestTicketGateway(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	conf, apiAddr := hallConf{ClientID: "collector-gateway", Broker: broker.URL(), Esup: `sink = "table"`}.write(t, dir)
	api := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)

	if code, body := httpDo(t, "POST", api+"/api/v1/cases", caseJSON("P-GW-1", "W05", "A031")); code != 200 {
		t.Fatalf("post case: %d %s", code, body)
	}
	ad := filepath.Join(dir, "agent")
	os.MkdirAll(ad, 0o755)
	a := startAgent(t, hallAgentConfig(t, ad, "w05-a", "W05", broker.URL()))
	a.waitLog(1, wait, "connected to broker")

	ticket := fmt.Sprintf(`{"v":1,"ticket":"A031","state":"done","staff":"SW05","item":"business licence","at":%q}`,
		time.Now().UTC().Format(time.RFC3339))
	code, body := curl(t, "POST", api+"/api/v1/counters/W05/ticket", ticket)
	if code != 200 || !strings.Contains(body, `"published": true`) {
		t.Fatalf("POST ticket: %d %s\n%s", code, body, c.String())
	}
	a.waitLog(1, wait, "msg=ticket ", "ticket=A031 ")
	a.press(2)
	a.waitDurable(1, wait)
	waitCount(t, api+"/api/v1/ratings?join_state=joined", `"case": "P-GW-1"`, 1, c.String)
	_, body = httpDo(t, "GET", api+"/api/v1/ratings?join_state=joined", "")
	if !strings.Contains(body, `"disposition": "counted"`) || !strings.Contains(body, `"ticket": "A031"`) {
		t.Fatalf("joined rating: %s", body)
	}
	waitCount(t, api+"/api/v1/counters", `"via": "http"`, 1, c.String)

	// A malformed body: 400 naming the field; the agent's ticket stays.
	for _, tc := range []struct{ body, field string }{
		{`{"v":1,"state":"done"}`, `"field": "ticket"`},
		{`{"v":7,"ticket":"B1","state":"done"}`, `"field": "v"`},
		{`{"v":1,"ticket":"B1","state":"called"}`, `"field": "state"`},
	} {
		if code, body := curl(t, "POST", api+"/api/v1/counters/W05/ticket", tc.body); code != 400 || !strings.Contains(body, tc.field) {
			t.Errorf("%s: %d %s, want 400 with %s", tc.body, code, body, tc.field)
		}
	}
	// DELETE clears the counter: the agent hears idle.
	if code, body := curl(t, "DELETE", api+"/api/v1/counters/W05/ticket", ""); code != 200 {
		t.Fatalf("DELETE ticket: %d %s", code, body)
	}
	a.waitLog(1, wait, "msg=ticket ", "state=idle")
	if n := a.count("ticket message rejected"); n != 0 {
		t.Fatalf("the agent rejected %d ticket messages the collector published:\n%s", n, a.log())
	}

	// The broker away: 503 with the reason, for the caller to retry.
	broker.Kill()
	deadline := time.Now().Add(wait)
	for {
		code, body = curl(t, "POST", api+"/api/v1/counters/W05/ticket", ticket)
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the broker down: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, "broker unavailable") {
		t.Fatalf("503 without a reason: %s", body)
	}
}

// TestStaffKeyJoinsByTime: in a hall with no queue system, the staff key
// opens the window, the press is counted, and the collector joins it with
// the case of its counter whose time span holds it (a case without a
// ticket number).
func TestStaffKeyJoinsByTime(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	conf, apiAddr := hallConf{ClientID: "collector-staffkey", Broker: broker.URL(), Esup: "sink = \"table\"\nmatch_window = \"5s\""}.write(t, dir)
	api := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)
	now := time.Now().UTC()
	kase := fmt.Sprintf(`{"projectNo":"P-W07-1","hall":"h1","counter":"W07","acceptedAt":%q,"finishedAt":%q}`,
		now.Add(-5*time.Minute).Format(time.RFC3339), now.Add(time.Minute).Format(time.RFC3339))
	if code, body := httpDo(t, "POST", api+"/api/v1/cases", kase); code != 200 {
		t.Fatalf("post a case without ticket: %d %s", code, body)
	}
	ad := filepath.Join(dir, "agent")
	os.MkdirAll(ad, 0o755)
	a := startAgent(t, hallAgentConfig(t, ad, "w07-a", "W07", broker.URL()))
	a.waitLog(1, wait, "connected to broker")
	if _, err := a.stdin.Write([]byte("i\n")); err != nil {
		t.Fatal(err)
	}
	a.waitLog(1, wait, "staff key: rating window open")
	a.press(1)
	a.waitDurable(1, wait)
	all := func() string { _, b := httpDo(t, "GET", api+"/api/v1/ratings", ""); return b + c.String() }
	if !clockSynced(t) {
		// This machine's kernel says its clock is not synchronised, so
		// the record says clock_synced false: its time is never trusted
		// for a join by time, and with no synchronised record of its
		// boot to repair it, it ends unmatched with the reason.
		t.Log("the system clock is not synchronised (adjtimex): checking that the rating is never joined by time")
		waitCount(t, api+"/api/v1/ratings?join_state=unmatched", `"join_reason": "clock_not_synced"`, 1, all)
		if _, body := httpDo(t, "GET", api+"/api/v1/evaluations", ""); strings.Contains(body, "P-W07-1") {
			t.Fatalf("an unsynchronised rating was joined by time: %s", body)
		}
		return
	}
	waitCount(t, api+"/api/v1/ratings?join_state=joined", `"case": "P-W07-1"`, 1, all)
	_, body := httpDo(t, "GET", api+"/api/v1/ratings?join_state=joined", "")
	if !strings.Contains(body, `"ticket_source": "staff"`) || !strings.Contains(body, `"ticket": "S-`) {
		t.Fatalf("joined staff-key rating: %s", body)
	}
	waitCount(t, api+"/api/v1/evaluations", `"projectNo": "P-W07-1"`, 1, c.String)
}

// TestTicketChangeFromAnotherHost: without http.token_file, a ticket change
// from an address other than loopback is refused and nothing is
// published. The other host is a network namespace the test makes, at
// 10.213.15.2, the collector listening on its side of the pair,
// 10.213.15.1; no other address is used.
func TestTicketChangeFromAnotherHost(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "HALLRATE_REQUIRE_NETNS", "a network namespace for the other host needs root")
	}
	n := &netns{t: t, name: "hrgw15", host: "hrgw15-h", peer: "hrgw15-a"}
	n.cleanup()
	n.must("ip", "netns", "add", n.name)
	t.Cleanup(n.cleanup)
	n.must("ip", "link", "add", n.host, "type", "veth", "peer", "name", n.peer)
	n.must("ip", "link", "set", n.peer, "netns", n.name)
	n.must("ip", "addr", "add", "10.213.15.1/30", "dev", n.host)
	n.must("ip", "link", "set", n.host, "up")
	n.must("ip", "netns", "exec", n.name, "ip", "addr", "add", "10.213.15.2/30", "dev", n.peer)
	n.must("ip", "netns", "exec", n.name, "ip", "link", "set", n.peer, "up")

	broker := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, broker.URL(), "e2e-gw-tickets", "hallrate/v1/h1/+/ticket")
	bin := buildCollector(t)
	dir := t.TempDir()
	conf, apiAddr := hallConf{ClientID: "collector-gw-remote", Broker: broker.URL(), Esup: `sink = "table"`,
		Listen: fmt.Sprintf("10.213.15.1:%d", mqtttest.FreePort(t))}.write(t, dir)
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, "http://"+apiAddr+"/healthz", 200, c.String)

	ticket := `{"v":1,"ticket":"A031","state":"done","staff":"S017","at":"2026-11-24T09:15:00+08:00"}`
	for _, method := range []string{"POST", "DELETE"} {
		args := append(n.prefix(), "curl", "-sS", "-X", method, "-H", "Content-Type: application/json",
			"-w", "\n%{http_code}", "--data-binary", ticket, "http://"+apiAddr+"/api/v1/counters/W05/ticket")
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl from the other host: %v: %s", err, out)
		}
		if !strings.HasSuffix(strings.TrimSpace(string(out)), "403") || !strings.Contains(string(out), "loopback only") {
			t.Fatalf("%s from 10.213.15.2 without a token: %s, want 403", method, out)
		}
	}
	// The refusals published nothing: a ticket published from loopback
	// afterwards is the first message on the topic.
	mqtttest.Publish(t, broker.URL(), "hallrate/v1/h1/W05/ticket", 1, false, []byte(`{"v":1,"state":"idle"}`))
	msgs := sub.Wait(t, wait, "the marker", func(m []mqtttest.Message) bool { return len(m) >= 1 })
	if string(msgs[0].Payload) != `{"v":1,"state":"idle"}` {
		t.Fatalf("a refused change was published: %s", msgs[0].Payload)
	}
}
