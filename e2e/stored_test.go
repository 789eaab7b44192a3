package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
