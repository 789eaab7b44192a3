package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.toml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hall.ID != "h1" || c.Hall.Timezone != "Asia/Shanghai" || c.MQTT.Broker != "tcp://127.0.0.1:1883" ||
		c.MQTT.TopicPrefix != "hallrate/v1" || c.MQTT.ShareGroup != "hallrate-collector" {
		t.Fatalf("defaults %+v", c)
	}
	if got := c.ClientID("pi4"); got != "hallrate-collector-h1-pi4" {
		t.Errorf("client id %q", got)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.toml"), false); err == nil {
		t.Error("a missing file given explicitly is not an error")
	}
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte(`
[hall]
id = "hall-7"
[mqtt]
embedded_broker = "0.0.0.0:1883"
client_id = "c1"
[store]
dsn = "postgres://u@h/db"
[http]
listen = "127.0.0.1:9110"
[esup]
sink = "table"
match_window = "12h"
[demo]
tickets = true
serving = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hall.ID != "hall-7" || c.MQTT.EmbeddedBroker != "0.0.0.0:1883" || c.ESup.MatchWindow.Duration != 12*time.Hour ||
		!c.Demo.Tickets || c.Demo.Serving.Duration != 5*time.Second || c.Demo.Done.Duration != 15*time.Second {
		t.Fatalf("parsed %+v", c)
	}
	if got := c.ClientID("pi4"); got != "c1" {
		t.Errorf("client id %q", got)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for in, want := range map[string]string{
		"[mqtt]\nbrokr = \"x\"\n":                    "config: mqtt.brokr: unknown key",
		"[hall]\nid = \"a b\"\n":                     "config: hall.id:",
		"[hall]\ntimezone = \"Nowhere/City\"\n":      "config: hall.timezone:",
		"[mqtt]\nbroker = \"http://x:1\"\n":          "config: mqtt.broker:",
		"[mqtt]\nembedded_broker = \"1883\"\n":       "config: mqtt.embedded_broker:",
		"[mqtt]\ntopic_prefix = \"a/#\"\n":           "config: mqtt.topic_prefix:",
		"[mqtt]\nshare_group = \"a/b\"\n":            "config: mqtt.share_group:",
		"[demo]\nserving = \"soon\"\n":               "demo.serving",
		"[demo]\nidle = \"0s\"\n":                    "config: demo.idle:",
		"[log]\nlevel = \"loud\"\n":                  "config: log.level:",
		"[esup]\nmatch_window = 3\n":                 "esup.match_window",
		"[hall]\nid = \"h1\"\n[hall]\nid = \"h2\"\n": "config:",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line with %q", in, err, want)
		}
	}
}
