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

// Process is a broker process owned by a test: started, killed, frozen and
// started again on the same port. It is killed when the test ends.
type Process struct {
	t       testing.TB
	name    string
	port    int
	command func() *exec.Cmd
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     syncBuffer
}

// NewProcess returns a stopped broker process that listens for MQTT on
// 127.0.0.1:port once command's process is up.
func NewProcess(t testing.TB, name string, port int, command func() *exec.Cmd) *Process {
	p := &Process{t: t, name: name, port: port, command: command}
	t.Cleanup(p.Kill)
	return p
}

// URL implements [Broker].
func (p *Process) URL() string { return "tcp://" + p.Addr() }

// Addr implements [Broker].
func (p *Process) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// Port returns the MQTT port.
func (p *Process) Port() int { return p.port }

// Start implements [Broker]; it returns once the port accepts connections.
func (p *Process) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	cmd := p.command()
	cmd.Stdout = &p.log
	cmd.Stderr = &p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.done)
	WaitListening(p.t, p.Addr(), p.done, &p.log)
}

// Kill implements [Broker] with SIGKILL.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Stop ends the broker with SIGTERM, letting it save its state.
func (p *Process) Stop() { p.signal(syscall.SIGTERM) }

// Freeze stops the broker process with SIGSTOP; Thaw resumes it.
func (p *Process) Freeze() { p.sig(syscall.SIGSTOP) }

// Thaw resumes a frozen broker.
func (p *Process) Thaw() { p.sig(syscall.SIGCONT) }

// Reload sends SIGHUP: Mosquitto reads its ACL and password files again.
func (p *Process) Reload() { p.sig(syscall.SIGHUP) }

// Log returns what the broker printed.
func (p *Process) Log() string { return p.log.String() }

// sig signals the broker's process group (some brokers are a script and
// the runtime it starts).
func (p *Process) sig(s syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, s)
	}
}

func (p *Process) signal(s syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-p.cmd.Process.Pid, s)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	if s != syscall.SIGKILL {
		// What the group left behind must not hold the port.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.cmd = nil
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Mosquitto is a mosquitto process owned by a test.
type Mosquitto struct {
	*Process
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
	bin, dir, port := MosquittoPath(t), t.TempDir(), FreePort(t)
	extra := o.Extra
	for _, h := range o.Hosts {
		extra = fmt.Sprintf("listener %d %s\n", port, h) + extra
	}
	if os.Geteuid() == 0 {
		// Run as root, mosquitto would switch to its own user, which
		// cannot write the test's persistence directory.
		extra = "user root\n" + extra
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(mosquittoConfig, port, dir, o.Persistence, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{NewProcess(t, "mosquitto", port, func() *exec.Cmd { return exec.Command(bin, "-c", conf) })}
	m.Start()
	return m
}

// WaitListening waits until addr accepts TCP connections, failing the test
// if exited closes first or a minute passes (RabbitMQ takes its time).
func WaitListening(t testing.TB, addr string, exited <-chan struct{}, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
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
	t.Fatalf("broker not listening on %s after a minute: %s", addr, log)
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
