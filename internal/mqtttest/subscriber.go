package mqtttest

import (
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Message is one message as a subscriber received it.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Collector keeps received messages and lets a test wait on them.
type Collector struct {
	mu     sync.Mutex
	msgs   []Message
	notify chan struct{}
}

// NewCollector returns an empty collector.
func NewCollector() *Collector { return &Collector{notify: make(chan struct{})} }

// Add records a message; it is safe for concurrent use.
func (c *Collector) Add(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	c.msgs = append(c.msgs, Message{topic, payload, retained})
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

// Messages returns a copy of what was received so far.
func (c *Collector) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Wait blocks until cond holds for the messages received, or fails the test
// after timeout with what describe says of them.
func (c *Collector) Wait(t testing.TB, timeout time.Duration, what string, cond func([]Message) bool) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		msgs := append([]Message(nil), c.msgs...)
		notify := c.notify
		c.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s (%d messages received)", timeout, what, len(msgs))
			return nil
		}
	}
}

// Subscribe connects a persistent-session subscriber (clean session off,
// QoS 1, automatic reconnect) to broker and feeds filter's messages to a
// collector. It disconnects when the test ends.
// Options such as TLS settings may be added with opts.
func Subscribe(t testing.TB, broker, clientID, filter string, opts ...Option) *Collector {
	t.Helper()
	c := NewCollector()
	handler := func(_ mqtt.Client, m mqtt.Message) {
		c.Add(m.Topic(), append([]byte(nil), m.Payload()...), m.Retained())
	}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(250 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(250 * time.Millisecond).
		SetOnConnectHandler(func(cl mqtt.Client) {
			// Resubscribing is harmless on a resumed session and needed
			// on a broker that lost it.
			cl.Subscribe(filter, 1, handler)
		})
	o.SetDefaultPublishHandler(handler)
	for _, f := range opts {
		f(o)
	}
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	// The handler's own subscription is asynchronous; this one returns
	// only once the broker has it.
	if tok := cl.Subscribe(filter, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return c
}

// Option adjusts a test client's options.
type Option func(*mqtt.ClientOptions)

// WithTLS makes a test client connect with cfg.
func WithTLS(cfg *tls.Config) Option { return func(o *mqtt.ClientOptions) { o.SetTLSConfig(cfg) } }

// Publish sends one message with a short-lived client and waits for the
// broker's acknowledgement.
func Publish(t testing.TB, broker, topic string, qos byte, retained bool, payload []byte, opts ...Option) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("mqtttest-pub-%d", time.Now().UnixNano()))
	for _, f := range opts {
		f(o)
	}
	cl := mqtt.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Publish(topic, qos, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}
