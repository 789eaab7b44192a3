package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// runCollector runs a hallrate-collector subcommand and returns its
// standard output and exit code.
func runCollector(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v", bin, args, err)
		return "", -1
	}
}

// generatedACL makes the hall ACL with `hallrate-collector acl` from an
// inventory of the given "device counter" pairs (keys "-": the ACL needs
// none).
func generatedACL(t *testing.T, bin string, devices ...string) string {
	t.Helper()
	var inv strings.Builder
	inv.WriteString("# device hall counter pubkey\n")
	for _, d := range devices {
		id, counter, _ := strings.Cut(d, " ")
		fmt.Fprintf(&inv, "%s %s %s -\n", id, hall, counter)
	}
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCollector(t, bin, "acl", "-keys", keys, "-collector", "hall-collector")
	if code != 0 {
		t.Fatalf("acl: exit %d: %s", code, out)
	}
	return out
}

func TestGeneratedACLMatchesHallExample(t *testing.T) {
	bin := buildCollector(t)
	got := generatedACL(t, bin, "w05-a W05", "w06-a W06")
	for _, want := range strings.Split(strings.TrimSpace(hallACL), "\n\n") {
		if !strings.Contains(got, want) {
			t.Errorf("generated ACL lacks\n%s\n---\n%s", want, got)
		}
	}
}

// TestACLDeniedDeviceCaughtByAudit: the hall's ACL is wrong, letting the
// terminal write its status but not its ratings. With MQTT 3.1.1 Mosquitto
// acknowledges the denied publishes, so the agent takes its records for
// delivered and drops them from its outbox. The collector's loss audit
// compares the status's last_seq with what arrived and reports them
// missing, on its API and in `verify -store`.
func TestACLDeniedDeviceCaughtByAudit(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	ca := mqtttest.NewCA(t, "hall")
	srvCert, srvKey := ca.Issue("broker", []net.IP{net.ParseIP("127.0.0.1")}, "localhost")
	colCert, colKey := ca.Issue("hall-collector", nil)
	devCert, devKey := ca.Issue("w05-a", nil)

	// The generated ACL with the terminal's rating line lost.
	acl := generatedACL(t, bin, "w05-a W05")
	bad := strings.Replace(acl, "topic write "+topics.rating+"\n", "", 1)
	if bad == acl {
		t.Fatalf("no rating line in the generated ACL:\n%s", acl)
	}
	aclFile := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclFile, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	m := mqtttest.StartMosquittoOpts(t, mqtttest.MosquittoOptions{Extra: fmt.Sprintf(`cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
acl_file %s
`, ca.File, srvCert, srvKey, aclFile)})
	broker := fmt.Sprintf("ssl://127.0.0.1:%d", m.Port())

	// The terminal, its key in the hall's keys file.
	agentDir := filepath.Join(dir, "agent")
	os.MkdirAll(agentDir, 0o700)
	agentConf := writeConfig(t, agentDir, "w05-a", broker, "")
	text, _ := os.ReadFile(agentConf)
	s := strings.Replace(string(text), "keepalive = \"2s\"\n", fmt.Sprintf("keepalive = \"2s\"\nstatus_interval = \"1s\"\nca_file = %q\ncert_file = %q\nkey_file = %q\n",
		ca.File, devCert, devKey), 1)
	if err := os.WriteFile(agentConf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("w05-a %s %s %s\n", hall, counter,
		record.EncodePublicKey(devicePubKey(t, agentConf)))), 0o600); err != nil {
		t.Fatal(err)
	}

	apiAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	api := "http://" + apiAddr
	db := filepath.Join(dir, "collector.db")
	conf := filepath.Join(dir, "collector.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[hall]
id = "h1"
timezone = "UTC"
[mqtt]
broker = %q
client_id = "collector-acl-e2e"
ca_file = %q
cert_file = %q
key_file = %q
[store]
dsn = "sqlite://%s"
[http]
listen = %q
[esup]
sink = "none"
[trust]
keys_file = %q
`, broker, ca.File, colCert, colKey, db, apiAddr, keys)), 0o600)
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)

	// The queue system (here the collector's identity, which may write
	// tickets) calls a ticket; the terminal may read it.
	colTLS := clientTLS(t, ca.File, colCert, colKey)
	mqtttest.Publish(t, broker, topics.ticket, 1, true, ticketJSON("A1", record.Serving), mqtttest.WithTLS(colTLS))

	a := startAgent(t, agentConf)
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	a.press(1, 2, 3)
	a.waitDurable(3, wait)

	// The broker acknowledged what it dropped: the terminal's status says
	// 3 delivered, none pending. The audit must say all 3 are missing.
	var au struct {
		Stored  int64 `json:"stored"`
		Devices []struct {
			Device     string `json:"device"`
			LastSeq    uint64 `json:"last_seq"`
			Pending    uint64 `json:"pending"`
			Missing    []struct{ From, To uint64 }
			TrustedKey string `json:"trusted_key"`
			PubKey     string `json:"pubkey"`
			KeyMatch   bool   `json:"key_mismatch"`
		} `json:"devices"`
	}
	body := ""
	for deadline := time.Now().Add(wait); ; {
		_, body = httpDo(t, "GET", api+"/api/v1/audit", "")
		if err := json.Unmarshal([]byte(body), &au); err != nil {
			t.Fatalf("audit: %v: %s", err, body)
		}
		if len(au.Devices) == 1 && len(au.Devices[0].Missing) == 1 && au.Devices[0].Missing[0].To == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit does not report seq 1-3 missing:\n%s\n%s\nagent:\n%s", body, c.String(), a.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if au.Devices[0].Missing[0].From != 1 || au.Stored != 0 || len(au.Devices) != 1 || au.Devices[0].LastSeq != 3 || au.Devices[0].Pending != 0 ||
		au.Devices[0].TrustedKey == "" || au.Devices[0].PubKey != au.Devices[0].TrustedKey || au.Devices[0].KeyMatch {
		t.Fatalf("audit: %s", body)
	}
	a.stop()
	c.kill()

	out, code := runCollector(t, bin, "verify", "-store", "-config", conf)
	if code != 1 || !strings.Contains(out, "w05-a epoch") || !strings.Contains(out, "MISSING (status says delivered) seq 1-3 (3)") {
		t.Fatalf("verify -store: exit %d:\n%s", code, out)
	}
}

// TestVerifyExitCodes: real terminals' records, stored and exported by a
// real collector that holds their keys, verify; the export with a field
// changed, a record removed, or without the keys does not.
func TestVerifyExitCodes(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	port := mqtttest.FreePort(t)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	agentConf := writeConfig(t, t.TempDir(), "w05-a", broker, "")
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("# device hall counter pubkey\nw05-a %s %s %s\n", hall, counter,
		record.EncodePublicKey(devicePubKey(t, agentConf)))), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	api := "http://" + apiAddr
	export := filepath.Join(dir, "records.jsonl")
	conf := filepath.Join(dir, "collector.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[hall]
id = "h1"
timezone = "UTC"
[mqtt]
embedded_broker = "127.0.0.1:%d"
client_id = "collector-verify-e2e"
[store]
dsn = "sqlite://%s"
jsonl = %q
[http]
listen = %q
[esup]
sink = "none"
[trust]
keys_file = %q
`, port, filepath.Join(dir, "collector.db"), export, apiAddr, keys)), 0o600)
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)
	tk, _ := json.Marshal(record.Ticket{V: 1, Ticket: "A1", State: record.Serving, Staff: "S017", Item: "business licence",
		ProjectNo: "620100-2026-000123", At: "2026-11-24T09:15:00+08:00"})
	mqtttest.Publish(t, broker, topics.ticket, 1, true, tk)
	a := startAgent(t, agentConf)
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	a.press(1, 2, 4, 3)
	waitCount(t, api+"/api/v1/ratings?trust=verified", `"trust": "verified"`, 4, func() string { return c.String() + "\nagent:\n" + a.log() })
	a.stop()
	c.kill()

	verify := func(args ...string) (string, int) {
		return runCollector(t, bin, append([]string{"verify", "-config", conf}, args...)...)
	}
	if out, code := verify(export); code != 0 || !strings.Contains(out, "4 records seq 1-4, 4 verified, 0 unverified, ok") {
		t.Fatalf("verify export: exit %d:\n%s", code, out)
	}
	if out, code := verify("-store"); code != 0 || !strings.Contains(out, "nothing flagged") {
		t.Fatalf("verify -store: exit %d:\n%s", code, out)
	}

	lines := readLines(t, export)
	write := func(name string, ls []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The 不满意 of seq 3 made a 非常满意 in the export.
	tampered := append([]string(nil), lines...)
	tampered[2] = strings.Replace(tampered[2], `"satisfaction":2`, `"satisfaction":5`, 1)
	if tampered[2] == lines[2] {
		t.Fatalf("seq 3 is not the 不满意: %s", lines[2])
	}
	if out, code := verify(write("tampered.jsonl", tampered)); code != 1 || !strings.Contains(out, "BAD SIGNATURE seq 3") ||
		!strings.Contains(out, "CHAIN BROKEN seq 4") {
		t.Fatalf("tampered: exit %d:\n%s", code, out)
	}
	// The rating moved to another staff member, or to another case: the
	// version 2 signature covers the whole ticket.
	for _, c := range []struct{ from, to string }{
		{`"staff":"S017"`, `"staff":"S018"`},
		{`"projectNo":"620100-2026-000123"`, `"projectNo":"620100-2026-000124"`},
	} {
		moved := append([]string(nil), lines...)
		moved[1] = strings.Replace(moved[1], c.from, c.to, 1)
		if moved[1] == lines[1] || !strings.Contains(moved[1], `"sigv":2`) {
			t.Fatalf("seq 2 has no %s or no sigv: %s", c.from, lines[1])
		}
		if out, code := verify(write("moved.jsonl", moved)); code != 1 || !strings.Contains(out, "BAD SIGNATURE seq 2") {
			t.Fatalf("%s changed: exit %d:\n%s", c.to, code, out)
		}
	}
	removed := append(append([]string(nil), lines[:1]...), lines[2:]...)
	if out, code := verify(write("removed.jsonl", removed)); code != 1 || !strings.Contains(out, "GAPS seq 2 (1)") {
		t.Fatalf("removed: exit %d:\n%s", code, out)
	}
	// Without the keys nothing verifies: that fails too, unless allowed.
	empty := write("nokeys", []string{"# no devices"})
	if out, code := verify("-keys", empty, export); code != 1 || !strings.Contains(out, "4 records UNVERIFIED") {
		t.Fatalf("no keys: exit %d:\n%s", code, out)
	}
	if out, code := verify("-keys", empty, "-allow-unverified", export); code != 0 {
		t.Fatalf("no keys, allowed: exit %d:\n%s", code, out)
	}
	if out, code := verify(); code != 2 {
		t.Fatalf("no file: exit %d:\n%s", code, out)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
