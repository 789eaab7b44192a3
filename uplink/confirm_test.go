package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// The hall's stored acknowledgement: a record it lists as missing is
// published again once it was acknowledged ConfirmWait ago, what it covers
// leaves the outbox, and an acknowledgement of another device or epoch
// changes nothing.
func TestStoredAcknowledgement(t *testing.T) {
	c := mqtttest.NewCollector()
	b := mqtttest.StartEmbedded(t, c.Add)
	o, err := buffer.Open(filepath.Join(t.TempDir(), "outbox.db"), buffer.Options{KeepUnconfirmed: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for i := 1; i <= 3; i++ {
		if _, err := o.Append(func(s buffer.Slot) ([]byte, []byte, error) { return []byte(fmt.Sprint(s.Seq)), nil, nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(b.URL())
	// Any acknowledgement is old enough to resend from.
	cfg.Device, cfg.ConfirmWait = "w05-a", time.Nanosecond
	u := New(cfg, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ratings := func(m []mqtttest.Message) []string {
		var out []string
		for _, x := range m {
			if strings.HasSuffix(x.Topic, "/rating") {
				out = append(out, string(x.Payload))
			}
		}
		return out
	}
	c.Wait(t, 10*time.Second, "three records", func(m []mqtttest.Message) bool { return len(ratings(m)) == 3 })
	t.Cleanup(func() {
		if t.Failed() {
			var ts []string
			for _, m := range c.Messages() {
				ts = append(ts, m.Topic+"="+string(m.Payload))
			}
			t.Logf("messages: %.2000s", strings.Join(ts, " "))
		}
	})
	waitEmpty(t, o, 10*time.Second)
	awaiting := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if w, _ := o.Unconfirmed(); w == n {
				return
			}
			if time.Now().After(deadline) {
				w, _ := o.Unconfirmed()
				t.Fatalf("%d records await confirmation, want %d", w, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	awaiting(3)
	ack := func(device, epoch string, through, highest uint64, missing ...uint64) {
		p, _ := json.Marshal(record.Stored{V: 1, Device: device, Epoch: epoch, ThroughSeq: through, HighestSeq: highest, Missing: append([]uint64{}, missing...)})
		mqtttest.Publish(t, b.URL(), cfg.Topics.Stored, 1, true, p)
	}
	// Another device's acknowledgement, and this one's of another epoch:
	// had either been taken, the next would find nothing to resend.
	ack("w06-a", o.Epoch(), 3, 3)
	ack("w05-a", "other", 3, 3)
	// Seq 2 missing: published again.
	ack("w05-a", o.Epoch(), 1, 3, 2)
	c.Wait(t, 10*time.Second, "seq 2 again", func(m []mqtttest.Message) bool { return fmt.Sprint(ratings(m)) == "[1 2 3 2]" })
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	awaiting(1)
	ack("w05-a", o.Epoch(), 3, 3)
	awaiting(0)
	if s := u.Stats(); s.Resent != 1 {
		t.Fatalf("resent %d, want 1", s.Resent)
	}
}
