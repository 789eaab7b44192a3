package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestPythonVerifiesAgentRecords: an independent verifier in Python,
// written from docs/contract.md alone, verifies the signature and the chain
// of records the real agent published, read with mosquitto_sub; it refuses
// them with staff, projectNo or satisfaction changed; and it checks the
// contract's worked example.
func TestPythonVerifiesAgentRecords(t *testing.T) {
	py := python3(t)
	script, _ := filepath.Abs("python/verify_records.py")
	if out, err := exec.Command(py, script, "--doc", "../docs/contract.md").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "worked example: ok") {
		t.Fatalf("worked example: %v\n%s", err, out)
	}

	m := mqtttest.StartMosquitto(t, "")
	records := startMosquittoSub(t, m.Port(), 5, "-t", topics.rating)
	ticket := func(id string, state record.TicketState) {
		b, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: state, Staff: "S017",
			Item: `营业执照 "设立" \ 登记`, ProjectNo: "620100-2026-000123", At: "2026-11-24T09:15:00+08:00"})
		mosquittoPub(t, m.Port(), "-t", topics.ticket, "-q", "1", "-r", "-m", string(b))
	}
	conf := writeConfig(t, t.TempDir(), "w05-a", m.URL(), "")
	pub := record.EncodePublicKey(devicePubKey(t, conf))
	ticket("A1", record.Serving)
	a := startAgent(t, conf)
	a.waitLog(1, wait, "msg=ticket", "ticket=A1")
	a.press(4, 1) // counted, repeat
	a.waitDurable(2, wait)
	ticket("", record.Idle)
	a.waitLog(1, wait, "msg=ticket", "state=idle")
	a.press(2) // no_ticket: ticket null
	a.waitDurable(3, wait)
	ticket("A2", record.Done)
	a.waitLog(1, wait, "msg=ticket", "ticket=A2")
	a.press(3, 3)
	lines := records()
	a.stop()

	file := filepath.Join(t.TempDir(), "records.jsonl")
	write := func(ls []string) {
		if err := os.WriteFile(file, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func() (string, error) {
		out, err := exec.Command(py, script, "--pubkey", pub, file).CombinedOutput()
		return string(out), err
	}
	write(lines)
	out, err := run()
	if err != nil || !strings.Contains(out, "5 records, 5 chain links checked, 0 findings") {
		t.Fatalf("python verifier on the agent's records: %v\n%s\n%s", err, out, strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[2], `"ticket":null`) || !strings.Contains(lines[0], `"sigv":2`) {
		t.Fatalf("records lack a null ticket or sigv:\n%s", strings.Join(lines, "\n"))
	}
	for _, c := range []struct {
		line     int
		from, to string
	}{
		{0, `"staff":"S017"`, `"staff":"S018"`},
		{0, `"projectNo":"620100-2026-000123"`, `"projectNo":"620100-2026-000999"`},
		{3, `"satisfaction":3`, `"satisfaction":5`},
	} {
		changed := append([]string(nil), lines...)
		changed[c.line] = strings.Replace(changed[c.line], c.from, c.to, 1)
		if changed[c.line] == lines[c.line] {
			t.Fatalf("record %d has no %s: %s", c.line+1, c.from, lines[c.line])
		}
		write(changed)
		if out, err := run(); err == nil || !strings.Contains(out, "BAD SIGNATURE") {
			t.Fatalf("%s: python verifier did not refuse it: %v\n%s", c.to, err, out)
		}
	}
}
