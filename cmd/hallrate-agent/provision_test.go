package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/internal/cli"
)

func provision(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := program().Dispatch(context.Background(), append([]string{"provision"}, args...),
		cli.IO{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return out.String(), errb.String(), err
}

func TestProvisionRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "agent.toml")
	out, _, err := provision(t, "", "--config", path, "--id", "w05-a", "--hall", "h1", "--counter", "W05",
		"--broker", `mqtts://broker.hall:8883`, "--ca-file", `C:\odd "dir"\ca.pem`,
		"--username", "w05", "--password-file", filepath.Join(dir, "password"),
		"--outbox", filepath.Join(dir, "outbox.db"),
		"--button", "good:5:GPIO5:GPIO12", "--button", "ok:3:GPIO6", "--button", "bad:1:GPIO13",
		"--pull", "down", "--active-low=false", "--http-listen", "127.0.0.1:9999")
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.ID != "w05-a" || c.Device.Hall != "h1" || c.Device.Counter != "W05" || c.Device.Driver != "gpio" ||
		c.MQTT.Broker != "mqtts://broker.hall:8883" || c.MQTT.CAFile != `C:\odd "dir"\ca.pem` || c.MQTT.Username != "w05" ||
		c.GPIO.Pull != "down" || *c.GPIO.ActiveLow || c.HTTP.Listen != "127.0.0.1:9999" ||
		len(c.Buttons) != 3 || c.Buttons[0] != (config.Button{Label: "good", Satisfaction: 5, Pin: "GPIO5", LED: "GPIO12"}) ||
		c.Buttons[2].Satisfaction != 1 || c.Binding.RatingWindow != config.Default().Binding.RatingWindow {
		t.Fatalf("loaded back: %+v", c)
	}
	for _, want := range []string{"Wrote " + path, "hallrate-agent selftest --config " + path,
		"systemctl enable --now hallrate-agent", "hallrate-agent status --config " + path} {
		if !strings.Contains(out, want) {
			t.Errorf("next steps lack %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
}

func TestProvisionRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	args := []string{"--config", path, "--id", "w05-a", "--hall", "h1", "--counter", "W05", "--broker", "tcp://10.0.0.2:1883"}
	if _, _, err := provision(t, "", args...); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, _, err := provision(t, "", append(args[:len(args):len(args)], "--id", "w06-a")...)
	if err == nil || !strings.Contains(err.Error(), "already exists; use -force") {
		t.Fatalf("second provision = %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused provision changed the file")
	}
	if _, _, err := provision(t, "", append(args[:len(args):len(args)], "--id", "w06-a", "--force")...); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(path); err != nil || c.Device.ID != "w06-a" {
		t.Fatalf("after -force: %+v %v", c.Device, err)
	}
}

func TestProvisionBadValueWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	_, _, err := provision(t, "", "--config", path, "--id", "w05 a", "--hall", "h1", "--counter", "W05", "--broker", "tcp://h:1883")
	if err == nil || !strings.Contains(err.Error(), "device.id") {
		t.Fatalf("provision = %v, want an error naming device.id", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written: %v", err)
	}
}

func TestProvisionMissingWithoutTerminal(t *testing.T) {
	_, stderr, err := provision(t, "", "--config", filepath.Join(t.TempDir(), "a.toml"), "--id", "w05-a")
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(stderr, "missing -hall, -counter, -broker") {
		t.Fatalf("provision = %v, stderr %q", err, stderr)
	}
}

func TestProvisionInteractive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	out, _, err := provision(t, "w07-b\nh2\nW07\nmqtts://10.0.0.2:8883\nsim\n/etc/hallrate/ca.pem\n",
		"--config", path, "--interactive")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.ID != "w07-b" || c.Device.Hall != "h2" || c.Device.Counter != "W07" || c.Device.Driver != "sim" ||
		c.MQTT.Broker != "mqtts://10.0.0.2:8883" || c.MQTT.CAFile != "/etc/hallrate/ca.pem" {
		t.Fatalf("loaded back: %+v %+v", c.Device, c.MQTT)
	}
	if !strings.Contains(out, "Device id, unique per terminal") || !strings.Contains(out, `Input driver, "gpio" for buttons or "sim" to type presses [gpio]: `) {
		t.Fatalf("questions:\n%s", out)
	}
}

// The example the package installs is not a working configuration (the
// agent says device.id is missing), and provision replaces it without
// -force.
func TestPackagedExample(t *testing.T) {
	example, err := os.ReadFile("../../packaging/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(example, []byte(unprovisionedMarker)) {
		t.Fatal("packaging/agent.toml does not start with the unprovisioned marker")
	}
	if _, err := config.Parse(example); err == nil || err.Error() != "config: device.id: missing" {
		t.Fatalf("the example parses as %v, want only device.id missing", err)
	}
	filled := strings.Replace(string(example), `id      = ""`, `id      = "w05-a"`, 1)
	filled = strings.Replace(filled, `hall    = ""`, `hall    = "h1"`, 1)
	filled = strings.Replace(filled, `counter = ""`, `counter = "W05"`, 1)
	if _, err := config.Parse([]byte(filled)); err != nil {
		t.Fatalf("the example with an identity does not parse: %v", err)
	}
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, example, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := provision(t, "", "--config", path, "--id", "w05-a", "--hall", "h1", "--counter", "W05", "--broker", "tcp://10.0.0.2:1883"); err != nil {
		t.Fatalf("provision over the example: %v", err)
	}
}
