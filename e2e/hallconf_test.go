package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/internal/mqtttest"
)

// hallConf is the configuration of a collector under test: hall h1, a
// broker, a database and the API on a free loopback port. The string
// fields add lines to their section, or sections after them (More).
type hallConf struct {
	ClientID string
	Broker   string // the broker's URL; empty with an embedded_broker line in MQTT
	TZ       string // the hall's time zone; UTC when empty
	DSN      string // the database; a SQLite file in the test's directory when empty
	Listen   string // the API's address; a free loopback port when empty
	MQTT     string
	Store    string
	HTTP     string
	// Esup is the [esup] section's body; none (the defaults) when empty.
	Esup string
	More string
}

// write writes the configuration as collector.toml in dir and returns its
// path and the API's address (host:port).
func (c hallConf) write(t *testing.T, dir string) (conf, apiAddr string) {
	t.Helper()
	apiAddr = c.Listen
	if apiAddr == "" {
		apiAddr = fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	}
	tz, dsn := c.TZ, c.DSN
	if tz == "" {
		tz = "UTC"
	}
	if dsn == "" {
		dsn = "sqlite://" + filepath.Join(dir, "collector.db")
	}
	var b strings.Builder
	line := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			b.WriteString(s + "\n")
		}
	}
	fmt.Fprintf(&b, "[hall]\nid = \"h1\"\ntimezone = %q\n[mqtt]\nclient_id = %q\n", tz, c.ClientID)
	if c.Broker != "" {
		fmt.Fprintf(&b, "broker = %q\n", c.Broker)
	}
	line(c.MQTT)
	fmt.Fprintf(&b, "[store]\ndsn = %q\n", dsn)
	line(c.Store)
	fmt.Fprintf(&b, "[http]\nlisten = %q\n", apiAddr)
	line(c.HTTP)
	if c.Esup != "" {
		line("[esup]\n" + c.Esup)
	}
	line(c.More)
	conf = filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, apiAddr
}

// esupConf is the [esup] section's body for a collector that delivers to
// e: its URL, its answer's success field, and quick retries.
func (e *esupEndpoint) esupConf() string {
	return fmt.Sprintf("url = \"http://%s/evaluations\"\nok_field = \"custom.code\"\nok_value = \"1\"\nretry_min = \"50ms\"\nretry_max = \"400ms\"", e.addr)
}
