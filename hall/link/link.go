// Package link is the collector's connection to the hall broker. It
// subscribes to the terminals' topics with a persistent session under a
// stable client id, hands the messages over in batches, and acknowledges
// each message only after its batch was handled: a record the collector
// has not yet stored is delivered again after a crash or a lost
// connection. It also publishes the collector's own messages.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hallrate/hallrate/internal/throttle"
)

// Config configures a [Link].
type Config struct {
	Broker   string
	ClientID string
	Username string
	Password string
	// Filters are the topic filters subscribed with QoS 1 on every
	// connection.
	Filters []string
	// MaxBatch bounds the messages handed over at once.
	MaxBatch  int
	KeepAlive time.Duration
	Logger    *slog.Logger
	// TLS, when set, is used for ssl://, mqtts:// and wss:// brokers (see
	// [TLSConfig]).
	TLS *tls.Config
}

// Message is a message received from the broker.
type Message struct {
	Topic     string
	Payload   []byte
	Retained  bool
	Duplicate bool
}

// Handler handles a batch of messages, in the order they arrived. When it
// returns nil the batch is acknowledged; an error stops [Link.Run] and
// leaves the batch unacknowledged, for the broker to deliver again.
type Handler func([]Message) error

// Link is the collector's MQTT client.
type Link struct {
	cfg    Config
	log    *slog.Logger
	client mqtt.Client
	in     chan mqtt.Message
	stop   chan struct{}
	once   sync.Once
	ready  atomic.Bool
}

// New returns a link; call Run to connect.
func New(cfg Config) *Link {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = 256
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	l := &Link{
		cfg:  cfg,
		log:  cfg.Logger,
		in:   make(chan mqtt.Message, 1024),
		stop: make(chan struct{}),
	}
	var attempts atomic.Int64
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		// The broker keeps the subscriptions and the unacknowledged
		// messages of the session while the collector is away.
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		// A session's queued messages may arrive before the subscriptions
		// are made again: the default handler takes every message.
		SetDefaultPublishHandler(l.onMessage).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			l.ready.Store(false)
			l.log.Warn("broker connection lost", "broker", cfg.Broker, "err", err)
		}).
		SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
			// A broker that is down must not fill the log: report the
			// first attempts, then every hundredth.
			if n := attempts.Add(1); throttle.Failures().Log(int64(n)) {
				l.log.Info("connecting to broker", "broker", cfg.Broker, "client_id", cfg.ClientID, "attempt", n)
			}
			return tc
		})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	l.client = mqtt.NewClient(opts)
	return l
}

// Ready reports whether the link is connected and subscribed.
func (l *Link) Ready() bool { return l.ready.Load() }

// onMessage runs on paho's router. It only queues the message; when the
// queue is full it waits, which holds back the broker rather than dropping.
func (l *Link) onMessage(_ mqtt.Client, m mqtt.Message) {
	select {
	case l.in <- m:
	case <-l.stop:
	}
}

// onConnect subscribes on every connection: the session may be new (a
// broker restarted without persistence) even when the client is not.
func (l *Link) onConnect(c mqtt.Client) {
	filters := make(map[string]byte, len(l.cfg.Filters))
	for _, f := range l.cfg.Filters {
		filters[f] = 1
	}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		t := c.SubscribeMultiple(filters, nil)
		err := errors.New("no answer from the broker")
		if t.WaitTimeout(10 * time.Second) {
			err = t.Error()
		}
		if err == nil {
			err = subackError(t)
		}
		if err == nil {
			l.ready.Store(true)
			l.log.Info("connected and subscribed", "broker", l.cfg.Broker, "client_id", l.cfg.ClientID, "filters", l.cfg.Filters)
			return
		}
		l.log.Warn("subscribe failed", "filters", l.cfg.Filters, "err", err, "retry_in", wait)
		select {
		case <-l.stop:
			return
		case <-time.After(wait):
		}
		if !c.IsConnectionOpen() {
			return // the next connection subscribes again
		}
	}
}

// subackError reports a filter the broker refused (return code 0x80).
func subackError(t mqtt.Token) error {
	st, ok := t.(*mqtt.SubscribeToken)
	if !ok {
		return nil
	}
	for f, code := range st.Result() {
		if code == 0x80 {
			return fmt.Errorf("broker refused subscription %q", f)
		}
	}
	return nil
}

// Run connects and hands messages to handle until ctx is cancelled or
// handle fails. It disconnects before it returns. Cancellation is not an
// error.
func (l *Link) Run(ctx context.Context, handle Handler) error {
	defer l.once.Do(func() { close(l.stop) })
	defer func() {
		l.ready.Store(false)
		l.client.Disconnect(500)
	}()
	// With ConnectRetry the token completes only once connected; the
	// first connection's outcome is logged by the handlers.
	l.client.Connect()
	batch := make([]mqtt.Message, 0, l.cfg.MaxBatch)
	msgs := make([]Message, 0, l.cfg.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-l.in:
			batch = append(batch[:0], m)
		}
	more:
		for len(batch) < l.cfg.MaxBatch {
			select {
			case m := <-l.in:
				batch = append(batch, m)
			default:
				break more
			}
		}
		msgs = msgs[:0]
		for _, m := range batch {
			msgs = append(msgs, Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), Duplicate: m.Duplicate()})
		}
		if err := handle(msgs); err != nil {
			return fmt.Errorf("link: handle %d messages: %w", len(msgs), err)
		}
		// PUBACKs go out in the order the messages arrived, as MQTT asks.
		for _, m := range batch {
			m.Ack()
		}
	}
}

// Publish publishes payload with QoS 1 and waits for the broker's
// acknowledgement or the end of ctx.
func (l *Link) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	t := l.client.Publish(topic, 1, retained, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("link: publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("link: publish %s: %w", topic, ctx.Err())
	}
}

// MoveCredentials takes a user name and password written into the broker
// URL out of it, into the fields paho would have filled from it anyway, so
// the URL can be logged: the password never is. A user or password given
// apart wins over the URL's.
func MoveCredentials(broker, username, password string) (string, string, string) {
	u, err := url.Parse(broker)
	if err != nil || u.User == nil {
		return broker, username, password
	}
	if username == "" {
		username = u.User.Username()
	}
	if p, ok := u.User.Password(); ok && password == "" {
		password = p
	}
	u.User = nil
	return u.String(), username, password
}
