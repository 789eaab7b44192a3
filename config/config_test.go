package config

import (
	"strings"
	"testing"
	"time"
)

const minimal = `
[device]
id = "w05-a"
hall = "h1"
counter = "W05"
driver = "sim"
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Broker != "tcp://127.0.0.1:1883" || c.MQTT.TopicPrefix != "hallrate/v1" ||
		c.Buffer.Path != "/var/lib/hallrate/outbox.db" || c.Buffer.MaxRecords != 100000 ||
		c.Binding.RatingWindow.Duration != 30*time.Second {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if len(c.Buttons) != 4 || c.Buttons[0].Label != "very_satisfied" || c.Buttons[3].Satisfaction != 2 {
		t.Fatalf("default buttons: %+v", c.Buttons)
	}
}

func TestContractExample(t *testing.T) {
	c, err := Parse([]byte(`
[device]
id      = "w05-a"
hall    = "h1"
counter = "W05"
driver  = "gpio"

[mqtt]
broker       = "mqtts://broker.hall.local:8883"
topic_prefix = "hallrate/v1"

[buffer]
path        = "/var/lib/hallrate/outbox.db"
max_records = 100000

[binding]
rating_window = "45s"

[[buttons]]
label = "good"
satisfaction = 5
pin = "GPIO5"
[[buttons]]
label = "ok"
satisfaction = 3
pin = "GPIO6"
led = "GPIO12"
[[buttons]]
label = "bad"
satisfaction = 1
pin = "P1_11"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Binding.RatingWindow.Duration != 45*time.Second || len(c.Buttons) != 3 || c.Buttons[2].Pin != "P1_11" {
		t.Fatalf("%+v", c)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"unknown key", minimal + "[mqtt]\nbrokr = \"tcp://x:1\"\n", "config: mqtt.brokr: unknown key"},
		{"unknown section", minimal + "[mqqt]\nbroker = \"tcp://x:1\"\n", "config: mqqt"},
		{"missing id", "[device]\nhall=\"h1\"\ncounter=\"W05\"\n", "config: device.id: missing"},
		{"bad id", strings.Replace(minimal, `"w05-a"`, `"w05 a"`, 1), "config: device.id:"},
		{"bad driver", strings.Replace(minimal, `"sim"`, `"usb"`, 1), "config: device.driver:"},
		{"bad broker scheme", minimal + "[mqtt]\nbroker = \"http://x:1\"\n", "config: mqtt.broker:"},
		{"no broker host", minimal + "[mqtt]\nbroker = \"tcp://\"\n", "config: mqtt.broker:"},
		{"wildcard prefix", minimal + "[mqtt]\ntopic_prefix = \"a/#\"\n", "config: mqtt.topic_prefix:"},
		{"wrong type", minimal + "[buffer]\nmax_records = \"many\"\n", "max_records"},
		{"bad duration", minimal + "[binding]\nrating_window = \"soon\"\n", "rating_window"},
		{"zero window", minimal + "[binding]\nrating_window = \"0s\"\n", "config: binding.rating_window:"},
		{"too few buttons", minimal + "[[buttons]]\nlabel=\"a\"\nsatisfaction=5\n", "config: buttons: 1 buttons"},
		{"bad code", minimal + strings.Repeat("[[buttons]]\nlabel=\"a\"\nsatisfaction=7\n", 3), "config: buttons.a.satisfaction:"},
		{"pin reused", strings.Replace(minimal, `"sim"`, `"gpio"`, 1) +
			"[[buttons]]\nlabel=\"a\"\nsatisfaction=5\npin=\"GPIO5\"\n" +
			"[[buttons]]\nlabel=\"b\"\nsatisfaction=4\npin=\"GPIO5\"\n" +
			"[[buttons]]\nlabel=\"c\"\nsatisfaction=3\npin=\"GPIO7\"\n", "config: buttons.b.pin: pin \"GPIO5\" is already used by buttons.a.pin"},
		{"not toml", "[device\n", "config: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want one line containing %q", msg, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "[mqtt]\nbroker = \"ssl://h:8883\"\n"))
	f.Add([]byte("[[buttons]]\nlabel=\"x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config fails validation: %v", err)
		}
	})
}
