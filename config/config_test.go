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
		{"unknown log level", minimal + "[log]\nlevel = \"verbose\"\n", "config: log.level: \"verbose\" is not one of debug, info, warn, error"},
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

func TestReasons(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Reasons
	if !r.On() || len(r.After) != 2 || r.After[0] != 1 || r.After[1] != 2 || r.Window.Duration != 10*time.Second ||
		len(r.Choices) != 4 || r.Choices[0] != (Reason{"attitude", "服务态度"}) || r.Choices[3] != (Reason{"other", "其他"}) {
		t.Fatalf("default reasons: %+v", r)
	}
	c, err = Parse([]byte(minimal + "[reasons]\nafter = []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Reasons.On() {
		t.Fatalf("after = [] leaves asking on: %+v", c.Reasons)
	}
	c, err = Parse([]byte(minimal + `[reasons]
after = [2]
window = "20s"
[[reasons.choices]]
code = "queue"
label = "排队太久"
[[reasons.choices]]
code = "other"
label = "其他"
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Reasons; !r.On() || len(r.After) != 1 || r.Window.Duration != 20*time.Second || len(r.Choices) != 2 || r.Choices[0].Label != "排队太久" {
		t.Fatalf("configured reasons: %+v", r)
	}
	bad := map[string]string{
		"[reasons]\nafter = [0]\n":                             "reasons.after",
		"[reasons]\nafter = [2, 2]\n":                          "reasons.after",
		"[reasons]\nwindow = \"0s\"\n":                         "reasons.window",
		"[reasons]\nwindow = \"1h\"\n":                         "reasons.window",
		"[reasons]\nwhy = 1\n":                                 "reasons.why",
		"[[reasons.choices]]\ncode = \"a b\"\nlabel = \"x\"\n": "reasons.choices[0].code",
		"[[reasons.choices]]\ncode = \"a\"\nlabel = \"\"\n":    "reasons.choices[0].label",
		"[[reasons.choices]]\ncode = \"a\"\nlabel = \"x\"\n[[reasons.choices]]\ncode = \"a\"\nlabel = \"y\"\n": "reasons.choices[1].code",
		strings.Repeat("[[reasons.choices]]\ncode = \"a\"\nlabel = \"x\"\n", 5):                                "reasons.choices",
	}
	for extra, key := range bad {
		_, err := Parse([]byte(minimal + extra))
		if err == nil || !strings.HasPrefix(err.Error(), "config: "+key) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: want one line about %s, got %v", extra, key, err)
		}
	}
}

func TestVoice(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Voice; v.Enabled || v.Dir != "/usr/share/hallrate/voice/zh" || v.Volume != 100 || v.Player != "aplay" || v.Device != "" {
		t.Fatalf("default voice: %+v", v)
	}
	c, err = Parse([]byte(minimal + "[voice]\nenabled = true\ndevice = \"plughw:1,0\"\nvolume = 60\n"))
	if err != nil || !c.Voice.Enabled || c.Voice.Device != "plughw:1,0" || c.Voice.Volume != 60 {
		t.Fatalf("%+v %v", c.Voice, err)
	}
	for extra, key := range map[string]string{
		"[voice]\nvolume = 101\n":                  "voice.volume",
		"[voice]\ndevice = \"a b\"\n":              "voice.device",
		"[voice]\nenabled = true\ndir = \"\"\n":    "voice.dir",
		"[voice]\nenabled = true\nplayer = \"\"\n": "voice.player",
		"[voice]\nenable = true\n":                 "voice.enable",
	} {
		_, err := Parse([]byte(minimal + extra))
		if err == nil || !strings.HasPrefix(err.Error(), "config: "+key) {
			t.Errorf("%q: want an error about %s, got %v", extra, key, err)
		}
	}
}

func TestReasonsThreeButtons(t *testing.T) {
	c, err := Parse([]byte(minimal + `[[buttons]]
label = "good"
satisfaction = 5
[[buttons]]
label = "ok"
satisfaction = 3
[[buttons]]
label = "bad"
satisfaction = 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if ch := c.Reasons.Choices; len(ch) != 3 || ch[0].Code != "attitude" || ch[1].Code != "speed" || ch[2].Code != "other" {
		t.Fatalf("default reasons of three buttons: %+v", ch)
	}
}
