package mqtttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// findOrSkip returns the first existing path, or skips the test (fails it
// when HALLRATE_REQUIRE_INTEROP is set, as in CI).
func findOrSkip(t testing.TB, what string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("HALLRATE_REQUIRE_INTEROP") != "" {
		t.Fatalf("%s is required (HALLRATE_REQUIRE_INTEROP is set) but not installed", what)
	}
	t.Skipf("%s not installed", what)
	return ""
}

// StartNATS starts nats-server with JetStream and its MQTT gateway on free
// loopback ports. Sessions and retained messages live in JetStream on disk,
// so they survive Kill and Start.
func StartNATS(t testing.TB) *Process {
	t.Helper()
	bin := findOrSkip(t, "nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "nats.conf")
	text := fmt.Sprintf(`listen: "127.0.0.1:%d"
server_name: "hallrate-test"
jetstream { store_dir: %q }
mqtt { listen: "127.0.0.1:%d" }
`, FreePort(t), filepath.Join(dir, "js"), port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := NewProcess(t, "nats-server", port, func() *exec.Cmd { return exec.Command(bin, "-c", conf) })
	p.Start()
	return p
}

// StartRabbitMQ starts a RabbitMQ node with the MQTT plugin on free loopback
// ports, its own Erlang port mapper included, all state in a temporary
// directory.
func StartRabbitMQ(t testing.TB) *Process {
	t.Helper()
	bin := findOrSkip(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server")
	dir := t.TempDir()
	port, amqp, dist, epmd := FreePort(t), FreePort(t), FreePort(t), FreePort(t)
	conf := filepath.Join(dir, "rabbitmq.conf")
	text := fmt.Sprintf(`listeners.tcp.default = 127.0.0.1:%d
mqtt.listeners.tcp.default = 127.0.0.1:%d
mqtt.allow_anonymous = true
loopback_users = none
management_agent.disable_metrics_collector = true
`, amqp, port)
	files := map[string]string{
		conf:                                  text,
		filepath.Join(dir, "enabled_plugins"): "[rabbitmq_mqtt].\n",
		filepath.Join(dir, ".erlang.cookie"):  "HALLRATETESTCOOKIE",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	// The test runs the Erlang port mapper itself, in the foreground, so
	// that it ends with the test instead of lingering as a daemon.
	epmdBin := findOrSkip(t, "epmd", "/usr/bin/epmd")
	epmdCmd := exec.Command(epmdBin, "-port", fmt.Sprint(epmd), "-address", "127.0.0.1")
	if err := epmdCmd.Start(); err != nil {
		t.Fatalf("start epmd: %v", err)
	}
	t.Cleanup(func() { _ = epmdCmd.Process.Kill(); _ = epmdCmd.Wait() })
	node := fmt.Sprintf("hallrate%d@localhost", port)
	p := NewProcess(t, "rabbitmq-server", port, func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"HOME="+dir,
			"RABBITMQ_NODENAME="+node,
			"RABBITMQ_CONFIG_FILE="+conf,
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_LOGS=-",
			fmt.Sprintf("RABBITMQ_DIST_PORT=%d", dist),
			fmt.Sprintf("ERL_EPMD_PORT=%d", epmd),
			"ERL_EPMD_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false",
		)
		return cmd
	})
	p.Start()
	return p
}
