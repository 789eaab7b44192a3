package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCommitBeforeAck: the publisher has its PUBACK only once Commit has
// returned; a refused message gets none, its publisher is disconnected and
// publishes it again on the next connection.
func TestCommitBeforeAck(t *testing.T) {
	release := make(chan struct{})
	var calls, refuse atomic.Int64
	refuse.Store(1)
	b, err := Open(Config{
		Addr: freeAddr(t),
		Commit: func(ctx context.Context, topic string, payload []byte) error {
			n := calls.Add(1)
			if n == 1 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				return nil
			}
			if refuse.Add(-1) >= 0 {
				return errors.New("store away")
			}
			return nil
		},
		Durable: func(topic string) bool { return strings.HasSuffix(topic, "/rating") },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Like the agent: clean session, no automatic reconnect; a record
	// leaves the outbox only on a token completed without error.
	connect := func() mqtt.Client {
		o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("terminal").SetCleanSession(true).SetAutoReconnect(false)
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	c := connect()
	defer c.Disconnect(100)

	tok := c.Publish("hallrate/v1/h1/W05/rating", 1, false, []byte("r1"))
	if tok.WaitTimeout(200 * time.Millisecond) {
		t.Fatal("PUBACK before the commit returned")
	}
	close(release)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the commit: %v", tok.Error())
	}

	// A status is not committed. A refused record gets no PUBACK: its
	// publisher is disconnected and publishes it again.
	if tok := c.Publish("hallrate/v1/h1/W05/status", 1, true, []byte("s")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("status: %v", tok.Error())
	}
	tok = c.Publish("hallrate/v1/h1/W05/rating", 1, false, []byte("r2"))
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("publisher not disconnected after a refused commit")
	}
	if tok.Error() == nil {
		t.Fatal("a refused record was acknowledged")
	}
	c = connect()
	defer c.Disconnect(100)
	if tok := c.Publish("hallrate/v1/h1/W05/rating", 1, false, []byte("r2")); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("record published again not acknowledged: %v", tok.Error())
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("Commit called %d times, want 3 (r1, r2 refused, r2 again)", got)
	}
	if b.Refused() != 1 {
		t.Errorf("Refused() = %d, want 1", b.Refused())
	}
}
