// Package broker runs an MQTT broker inside the collector, for a hall that
// has no broker of its own and for demonstrations. Sessions and retained
// messages live in memory: they survive reconnections, not a restart of
// the collector.
package broker

import (
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a running embedded broker.
type Broker struct {
	srv *mqtt.Server
	tcp *listeners.TCP
}

// Start listens on addr (host:port; port 0 picks a free one) and serves
// MQTT clients until Close. Every client is allowed: the listener should be
// on the hall's own network.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := mqtt.New(&mqtt.Options{Logger: log, InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
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
