package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the collector's SQLite file, read by the test

	"github.com/hallrate/hallrate/internal/mqtttest"
)

// TestHallEmbeddedBrokerKill: with --embedded-broker the broker lives in
// the collector's process and keeps its sessions in memory. Real agents
// drain a backlog through it; the collector is killed with SIGKILL midway
// and started again. Every record is stored: the broker acknowledges a
// record to the agent only after the collector committed it, so a record
// the agent deleted from its outbox is never one that died with the
// broker's memory.
func TestHallEmbeddedBrokerKill(t *testing.T) {
	const agents, presses = 3, 300
	bin := buildCollector(t)
	dir := t.TempDir()
	port := mqtttest.FreePort(t)
	api := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	dbPath := filepath.Join(dir, "collector.db")
	conf := filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[hall]
id = "h1"
timezone = "UTC"
[mqtt]
embedded_broker = "127.0.0.1:%d"
client_id = "collector-embedded"
[store]
dsn = "sqlite://%s"
[http]
listen = %q
[esup]
sink = "none"
[log]
level = "warn"
`, port, dbPath, api)), 0o600); err != nil {
		t.Fatal(err)
	}

	// The backlog: presses made while the hall's broker (the collector)
	// is not running.
	var procs []*agentProc
	for i := range agents {
		d := filepath.Join(dir, fmt.Sprintf("agent%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		a := startAgent(t, hallAgentConfig(t, d, fmt.Sprintf("e%02d-a", i), fmt.Sprintf("E%02d", i), fmt.Sprintf("tcp://127.0.0.1:%d", port)))
		buttons := make([]int, presses)
		for k := range buttons {
			buttons[k] = 1 + k%4
		}
		a.press(buttons...)
		procs = append(procs, a)
	}
	for _, a := range procs {
		a.waitDurable(presses, 30*time.Second)
	}
	want := map[string]bool{}
	for _, a := range procs {
		for _, id := range a.ackedIDs() {
			want[id] = true
		}
	}
	if len(want) != agents*presses {
		t.Fatalf("%d presses durable, want %d", len(want), agents*presses)
	}

	c := newSupervised(t, "collector", bin, conf, "http://"+api)
	started := time.Now()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	// Kill it while the agents drain, once a sixth of the backlog is in.
	deadline := time.Now().Add(60 * time.Second)
	for c.stored.Load() < int64(len(want)/6) {
		if time.Now().After(deadline) {
			t.Fatalf("collector stored %d records in a minute:\n%s", c.stored.Load(), c)
		}
		time.Sleep(5 * time.Millisecond)
	}
	storedAtKill := c.stored.Load()
	if err := c.kill9(nil); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	have := map[string]bool{}
	deadline = time.Now().Add(90 * time.Second)
	for len(have) < len(want) {
		if time.Now().After(deadline) {
			missing := 0
			for id := range want {
				if !have[id] {
					missing++
				}
			}
			t.Fatalf("%d of %d records never stored after the collector's kill -9:\n%s", missing, len(want), c)
		}
		time.Sleep(100 * time.Millisecond)
		rows, err := db.Query(`SELECT id FROM rating`)
		if err != nil {
			continue // the collector may hold a lock a moment
		}
		have = map[string]bool{}
		for rows.Next() {
			var id string
			if rows.Scan(&id) == nil {
				have[id] = true
			}
		}
		rows.Close()
	}
	took := time.Since(started)
	c.stop()
	for id := range have {
		if !want[id] {
			t.Errorf("stored %s, which no agent made", id)
		}
	}
	fmt.Printf("hall embedded broker: %d agents drained a backlog of %d records; collector kill -9 after %d stored, restarted; "+
		"stored %d, lost 0; %.1fs\n", agents, len(want), storedAtKill, len(have), took.Seconds())
}
