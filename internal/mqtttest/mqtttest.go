// Package mqtttest starts real MQTT brokers on loopback for tests: Mosquitto
// from the system's packages, or the embedded mochi-mqtt broker in-process.
// Both can be stopped and started again on the same port to make outages.
package mqtttest

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a broker a test can take down and bring back.
type Broker interface {
	// URL is tcp://127.0.0.1:PORT, stable across restarts.
	URL() string
	// Addr is 127.0.0.1:PORT.
	Addr() string
	// Kill stops the broker abruptly (SIGKILL for Mosquitto).
	Kill()
	// Start starts it again on the same port.
	Start()
}

// FreePort returns a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// MosquittoPath returns the mosquitto binary, or skips the test.
func MosquittoPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("HALLRATE_REQUIRE_MOSQUITTO") != "" {
		t.Fatal("mosquitto is required (HALLRATE_REQUIRE_MOSQUITTO is set) but not installed")
	}
	t.Skip("mosquitto not installed (apt-get install mosquitto)")
	return ""
}

// Mosquitto is a mosquitto process owned by a test.
type Mosquitto struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

// mosquittoConfig is written deliberately: no cap on queued messages, so a
// long backlog is not dropped, and persistence chosen by the caller.
const mosquittoConfig = `listener %d 127.0.0.1
allow_anonymous true
persistence_location %s/
%s
max_queued_messages 0
max_inflight_messages 100
log_dest stderr
log_type error
log_type warning
%s`

// Durable is the persistence part of the configuration: saved on every
// change, so a broker killed with SIGKILL keeps what it acknowledged.
const Durable = "persistence true\nautosave_interval 1\nautosave_on_changes true"

// Volatile keeps nothing on disk: for benchmarks of the agent's side.
const Volatile = "persistence false"

// StartMosquitto starts a [Durable] mosquitto on a free loopback port.
// extra is appended to its configuration. The broker is killed when the
// test ends.
func StartMosquitto(t testing.TB, extra string) *Mosquitto {
	t.Helper()
	return StartMosquittoWith(t, Durable, extra)
}

// StartMosquittoWith starts mosquitto with the given persistence settings.
func StartMosquittoWith(t testing.TB, persistence, extra string) *Mosquitto {
	t.Helper()
	return StartMosquittoOpts(t, MosquittoOptions{Persistence: persistence, Extra: extra})
}

// MosquittoOptions configures [StartMosquittoOpts].
type MosquittoOptions struct {
	Persistence string // [Durable] when empty
	Extra       string
	// Hosts are further addresses to listen on, on the same port as
	// 127.0.0.1: the test's own network namespace hosts.
	Hosts []string
}

// StartMosquittoOpts starts mosquitto as o says.
func StartMosquittoOpts(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	if o.Persistence == "" {
		o.Persistence = Durable
	}
	persistence, extra := o.Persistence, o.Extra
	m := &Mosquitto{t: t, bin: MosquittoPath(t), dir: t.TempDir(), port: FreePort(t)}
	for _, h := range o.Hosts {
		extra = fmt.Sprintf("listener %d %s\n", m.port, h) + extra
	}
	conf := filepath.Join(m.dir, "mosquitto.conf")
	if os.Geteuid() == 0 {
		// Run as root, mosquitto would switch to its own user, which
		// cannot write the test's persistence directory.
		extra = "user root\n" + extra
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(mosquittoConfig, m.port, m.dir, persistence, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Kill)
	return m
}

// URL implements [Broker].
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// Addr implements [Broker].
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// Port returns the port the broker listens on.
func (m *Mosquitto) Port() int { return m.port }

// Start implements [Broker]; it returns once the port accepts connections.
func (m *Mosquitto) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	cmd.Stdout = &m.log
	cmd.Stderr = &m.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(m.done)
	WaitListening(m.t, m.Addr(), m.done, &m.log)
}

// Kill implements [Broker] with SIGKILL.
func (m *Mosquitto) Kill() { m.signal(syscall.SIGKILL) }

// Stop ends the broker with SIGTERM, letting it save its state.
func (m *Mosquitto) Stop() { m.signal(syscall.SIGTERM) }

// Freeze stops the broker process with SIGSTOP; Thaw resumes it.
func (m *Mosquitto) Freeze() { m.sig(syscall.SIGSTOP) }

// Thaw resumes a frozen broker.
func (m *Mosquitto) Thaw() { m.sig(syscall.SIGCONT) }

func (m *Mosquitto) sig(s syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(s)
	}
}

func (m *Mosquitto) signal(s syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGCONT)
	_ = m.cmd.Process.Signal(s)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// WaitListening waits until addr accepts TCP connections, failing the test
// if exited closes first or 10 seconds pass.
func WaitListening(t testing.TB, addr string, exited <-chan struct{}, log *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("broker exited before listening on %s: %s", addr, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("broker not listening on %s after 10s", addr)
}

// Embedded is the mochi-mqtt broker run in the test process. Every message
// published to it is also handed to OnMessage by an inline subscription
// made before the listener opens, so nothing published can be missed.
type Embedded struct {
	t         testing.TB
	port      int
	onMessage func(topic string, payload []byte, retained bool)
	mu        sync.Mutex
	srv       *mochi.Server
}

// StartEmbedded starts the embedded broker on a free loopback port.
// onMessage may be nil.
func StartEmbedded(t testing.TB, onMessage func(topic string, payload []byte, retained bool)) *Embedded {
	t.Helper()
	e := &Embedded{t: t, port: FreePort(t), onMessage: onMessage}
	e.Start()
	t.Cleanup(e.Kill)
	return e
}

// URL implements [Broker].
func (e *Embedded) URL() string { return "tcp://" + e.Addr() }

// Addr implements [Broker].
func (e *Embedded) Addr() string { return fmt.Sprintf("127.0.0.1:%d", e.port) }

// Server returns the running mochi server (nil while killed).
func (e *Embedded) Server() *mochi.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// Start implements [Broker].
func (e *Embedded) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return
	}
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		e.t.Fatal(err)
	}
	if e.onMessage != nil {
		err := srv.Subscribe("#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
			e.onMessage(pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain)
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: e.Addr()})
	if err := srv.AddListener(tcp); err != nil {
		e.t.Fatalf("embedded broker listen: %v", err)
	}
	if err := srv.Serve(); err != nil {
		e.t.Fatalf("embedded broker serve: %v", err)
	}
	e.srv = srv
	WaitListening(e.t, e.Addr(), nil, &bytes.Buffer{})
}

// Kill implements [Broker].
func (e *Embedded) Kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return
	}
	_ = e.srv.Close()
	e.srv = nil
}

var (
	_ Broker = (*Mosquitto)(nil)
	_ Broker = (*Embedded)(nil)
)
