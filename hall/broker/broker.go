// Package broker runs an MQTT broker inside the collector, for a hall that
// has no broker of its own and for demonstrations. Sessions and retained
// messages live in memory: they survive reconnections, not a restart of
// the collector. That is why the messages that must survive one, the
// terminals' records, are handed to [Config.Commit] before the broker
// acknowledges them: a terminal deletes a record once it has the PUBACK.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hallrate/hallrate/internal/throttle"
)

// Config configures an embedded broker.
type Config struct {
	// Addr is host:port; port 0 picks a free one.
	Addr   string
	Logger *slog.Logger
	// Commit, when set, is called with every message published on a topic
	// Durable accepts, before the broker acknowledges it (PUBACK) or passes
	// it on to subscribers. When it returns an error the message is
	// refused: no acknowledgement, and the publisher is disconnected, so
	// that it publishes the message again once it has reconnected.
	Commit func(ctx context.Context, topic string, payload []byte) error
	// Durable says which topics go through Commit.
	Durable func(topic string) bool
	// CommitTimeout bounds one Commit; 30s when zero.
	CommitTimeout time.Duration
}

// Broker is a running embedded broker.
type Broker struct {
	srv    *mqtt.Server
	tcp    *listeners.TCP
	commit *commitHook
}

// Start listens on addr (host:port; port 0 picks a free one) and serves
// MQTT clients until Close. Every client is allowed: the listener should be
// on the hall's own network.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	return Open(Config{Addr: addr, Logger: log})
}

// Open starts a broker as cfg says and serves MQTT clients until Close.
// Every client is allowed: the listener should be on the hall's own
// network.
func Open(cfg Config) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := mqtt.New(&mqtt.Options{Logger: log, InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	var commit *commitHook
	if cfg.Commit != nil {
		if cfg.Durable == nil {
			return nil, errors.New("broker: Commit without Durable")
		}
		if cfg.CommitTimeout <= 0 {
			cfg.CommitTimeout = 30 * time.Second
		}
		commit = &commitHook{commit: cfg.Commit, durable: cfg.Durable, timeout: cfg.CommitTimeout, log: log}
		if err := srv.AddHook(commit, nil); err != nil {
			return nil, fmt.Errorf("broker: add commit hook: %w", err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", cfg.Addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp, commit: commit}, nil
}

// Refused returns how many messages Commit refused.
func (b *Broker) Refused() int64 {
	if b.commit == nil {
		return 0
	}
	return b.commit.refused.Load()
}

// commitHook commits durable messages before the broker acknowledges them.
// mochi runs OnPublish on the publisher's read loop, before it writes the
// PUBACK: a publisher's messages are committed one after another, in order,
// and its next message is read only after this one was committed.
type commitHook struct {
	mqtt.HookBase
	commit  func(ctx context.Context, topic string, payload []byte) error
	durable func(topic string) bool
	timeout time.Duration
	log     *slog.Logger
	refused atomic.Int64
}

func (h *commitHook) ID() string { return "hallrate-commit" }

func (h *commitHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *commitHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !h.durable(pk.TopicName) {
		return pk, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	err := h.commit(ctx, pk.TopicName, pk.Payload)
	if err == nil {
		return pk, nil
	}
	// Without a PUBACK the publisher keeps the message; a new connection
	// makes it publish it again.
	if n := h.refused.Add(1); throttle.Refusals().Log(n) {
		h.log.Error("message not committed: refused, publisher disconnected", "client", cl.ID,
			"topic", pk.TopicName, "err", err, "refused_total", n)
	}
	cl.Stop(fmt.Errorf("broker: commit %s: %w", pk.TopicName, err))
	return pk, packets.ErrRejectPacket
}

// Addr returns the address the broker listens on, with the port it got.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL returns the broker's address as a client on the same machine
// connects to it: a wildcard listen address becomes loopback.
func (b *Broker) URL() string {
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		return "tcp://" + b.Addr()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

// Close disconnects every client and stops listening.
func (b *Broker) Close() error {
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}
